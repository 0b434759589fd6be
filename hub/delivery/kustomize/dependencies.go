package kustomize

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/placement"
)

const dependsOnIndex = ".spec.dependsOn"

// dependencyKeys are the namespace/name of the Kustomizations ks depends on.
func dependencyKeys(ks *deliveryv1.Kustomization) []string {
	out := make([]string, 0, len(ks.Spec.DependsOn))
	for _, d := range ks.Spec.DependsOn {
		out = append(out, dependencyKey(ks, d).String())
	}
	return out
}

func dependencyKey(ks *deliveryv1.Kustomization, d deliveryv1.DependencyReference) types.NamespacedName {
	ns := d.Namespace
	if ns == "" {
		ns = ks.Namespace
	}
	return types.NamespacedName{Namespace: ns, Name: d.Name}
}

// dependents maps a Kustomization to those that depend on it.
func (r *Reconciler) dependents(ctx context.Context, o client.Object) []reconcile.Request {
	var list deliveryv1.KustomizationList
	key := types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}.String()
	if err := r.Client.List(ctx, &list, client.MatchingFields{dependsOnIndex: key}); err != nil {
		return nil
	}
	return requests(list.Items)
}

// unplaced decides, per cluster, which of ks's dependencies are not placed there: the
// hub knows both placements, so it tells the agent, which could only see "no such
// Assignment (yet)". A dependency that does not exist on the hub stays in dependsOn,
// and the agent says it waits for it. Dependencies are in the tenant's own namespaces
// (admission), so the tenant's reach is the same for both and placement alone decides.
func (r *Reconciler) unplaced(ctx context.Context, ks *deliveryv1.Kustomization) (func(*fleetv1.Cluster) []string, error) {
	if len(ks.Spec.DependsOn) == 0 {
		return nil, nil
	}
	type dep struct {
		assignment string
		placement  deliveryv1.Placement
	}
	var deps []dep
	for _, d := range ks.Spec.DependsOn {
		key := dependencyKey(ks, d)
		var other deliveryv1.Kustomization
		switch err := r.Client.Get(ctx, key, &other); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, err
		}
		deps = append(deps, dep{
			assignment: fleetv1.AssignmentName(deliveryv1.KustomizationKind, key.Namespace, key.Name),
			placement:  other.Spec.Placement,
		})
	}
	if len(deps) == 0 {
		return nil, nil
	}
	var groups fleetv1.ClusterGroupList
	if err := r.Client.List(ctx, &groups); err != nil {
		return nil, err
	}
	return func(c *fleetv1.Cluster) []string {
		var out []string
		for _, d := range deps {
			res, err := placement.Select(d.placement, []fleetv1.Cluster{*c}, groups.Items)
			if err == nil && len(res.Clusters) == 0 {
				out = append(out, d.assignment)
			}
		}
		return out
	}, nil
}
