package helmrelease

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
		k := placement.DependencyKey(hr.Namespace, d)
		out = append(out, deliveryv1.HelmReleaseKind+"/"+k.Namespace+"/"+k.Name)
	}
	return out
}

// unplaced decides, per cluster, which of hr's dependencies are not placed there,
// as for Kustomizations: the agent then reports DependencyNotPlaced rather than
// waiting for a release that will never come.
func (r *Reconciler) unplaced(ctx context.Context, hr *deliveryv1.HelmRelease) (func(*fleetv1.Cluster) []string, error) {
	return placement.Unplaced(ctx, r.Client, deliveryv1.HelmReleaseKind, hr.Namespace, hr.Spec.DependsOn,
		func(ctx context.Context, key types.NamespacedName) (*deliveryv1.Placement, error) {
			var other deliveryv1.HelmRelease
			if err := r.Client.Get(ctx, key, &other); err != nil {
				return nil, client.IgnoreNotFound(err)
			}
			return &other.Spec.Placement, nil
		})
}
