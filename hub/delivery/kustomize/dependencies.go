package kustomize

import (
	"context"

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
		out = append(out, placement.DependencyKey(ks.Namespace, d).String())
	}
	return out
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

// unplaced decides, per cluster, which of ks's dependencies are not placed there
// (placement.Unplaced).
func (r *Reconciler) unplaced(ctx context.Context, ks *deliveryv1.Kustomization) (func(*fleetv1.Cluster) []string, error) {
	return placement.Unplaced(ctx, r.Client, deliveryv1.KustomizationKind, ks.Namespace, ks.Spec.DependsOn,
		func(ctx context.Context, key types.NamespacedName) (*deliveryv1.Placement, error) {
			var other deliveryv1.Kustomization
			if err := r.Client.Get(ctx, key, &other); err != nil {
				return nil, client.IgnoreNotFound(err)
			}
			return &other.Spec.Placement, nil
		})
}
