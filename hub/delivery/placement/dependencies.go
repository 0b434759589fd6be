package placement

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// DependencyKey is where a dependency of a deployment in namespace lives: its own
// namespace when the reference names none.
func DependencyKey(namespace string, d deliveryv1.DependencyReference) types.NamespacedName {
	if d.Namespace != "" {
		namespace = d.Namespace
	}
	return types.NamespacedName{Namespace: namespace, Name: d.Name}
}

// Unplaced decides, per cluster, which of a deployment's dependencies (of the same
// kind, in namespace) are not placed there: the hub knows both placements, so it
// tells the agent, which could only see "no such Assignment (yet)". placementOf
// returns a dependency's placement, or nil when it does not exist on the hub: such
// a dependency stays in dependsOn, and the agent says it waits for it. Dependencies
// are in the tenant's own namespaces (admission), so the tenant's reach is the same
// for both and placement alone decides. Nil when no dependency can be unplaced.
func Unplaced(ctx context.Context, c client.Reader, kind, namespace string, refs []deliveryv1.DependencyReference,
	placementOf func(context.Context, types.NamespacedName) (*deliveryv1.Placement, error)) (func(*fleetv1.Cluster) []string, error) {
	type dep struct {
		assignment string
		placement  deliveryv1.Placement
	}
	var deps []dep
	for _, d := range refs {
		key := DependencyKey(namespace, d)
		p, err := placementOf(ctx, key)
		if err != nil {
			return nil, err
		}
		if p != nil {
			deps = append(deps, dep{assignment: fleetv1.AssignmentName(kind, key.Namespace, key.Name), placement: *p})
		}
	}
	if len(deps) == 0 {
		return nil, nil
	}
	var groups fleetv1.ClusterGroupList
	if err := c.List(ctx, &groups); err != nil {
		return nil, err
	}
	return func(cl *fleetv1.Cluster) []string {
		var out []string
		for _, d := range deps {
			res, err := Select(d.placement, []fleetv1.Cluster{*cl}, groups.Items)
			if err == nil && len(res.Clusters) == 0 {
				out = append(out, d.assignment)
			}
		}
		return out
	}, nil
}
