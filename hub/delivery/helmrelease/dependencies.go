package helmrelease

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/placement"
)

// dependsOnIndex maps a HelmRelease to the HelmReleases it depends on, so that a
// dependency placed on more or fewer clusters rewrites its dependents' Assignments.
const dependsOnIndex = ".spec.dependsOn"

func dependencyKeys(hr *deliveryv1.HelmRelease) []string {
	out := make([]string, 0, len(hr.Spec.DependsOn))
	for _, d := range hr.Spec.DependsOn {
		k := dependencyKey(hr, d)
		out = append(out, deliveryv1.HelmReleaseKind+"/"+k.Namespace+"/"+k.Name)
	}
	return out
}

func dependencyKey(hr *deliveryv1.HelmRelease, d deliveryv1.DependencyReference) types.NamespacedName {
	ns := d.Namespace
	if ns == "" {
		ns = hr.Namespace
	}
	return types.NamespacedName{Namespace: ns, Name: d.Name}
}

// unplaced decides, per cluster, which of hr's dependencies are not placed there, as
// the Kustomization controller does: the agent then reports DependencyNotPlaced
// rather than waiting for a release that will never come. A dependency that does
// not exist on the hub stays in dependsOn (the agent says it waits for it).
func (r *Reconciler) unplaced(ctx context.Context, hr *deliveryv1.HelmRelease) (func(*fleetv1.Cluster) []string, error) {
	if len(hr.Spec.DependsOn) == 0 {
		return nil, nil
	}
	type dep struct {
		assignment string
		placement  deliveryv1.Placement
	}
	var deps []dep
	for _, d := range hr.Spec.DependsOn {
		key := dependencyKey(hr, d)
		var other deliveryv1.HelmRelease
		switch err := r.Client.Get(ctx, key, &other); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, err
		}
		deps = append(deps, dep{
			assignment: fleetv1.AssignmentName(deliveryv1.HelmReleaseKind, key.Namespace, key.Name),
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
