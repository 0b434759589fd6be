package engine

import (
	"context"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
)

// Watch adds to a deployment kind's controller the watches the engine needs: any
// Cluster or ClusterGroup change that can move placement or readiness requeues every
// deployment of the kind, and an Assignment's change requeues its owner.
func Watch(b *builder.Builder, c client.Reader, kind owners.Kind) *builder.Builder {
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		list := kind.NewList()
		if err := c.List(ctx, list); err != nil {
			log.FromContext(ctx).Error(err, "listing deployments for a fleet change", "kind", kind.Kind)
			return nil
		}
		var out []reconcile.Request
		_ = apimeta.EachListItem(list, func(o runtime.Object) error {
			if m, err := apimeta.Accessor(o); err == nil {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}})
			}
			return nil
		})
		return out
	})
	return b.
		Watches(&fleetv1.Cluster{}, all, builder.WithPredicates(predicate.Or(
			predicate.LabelChangedPredicate{}, predicate.GenerationChangedPredicate{}, readyChanged{}))).
		Watches(&fleetv1.ClusterGroup{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Tenants are few and change rarely: any change re-admits every deployment.
		Watches(&tenancyv1.Tenant{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fleetv1.Assignment{}, handler.EnqueueRequestsFromMapFunc(ownerOf(kind.Kind)))
}

// ownerOf maps an Assignment of the kind to its owner, by the owner labels.
func ownerOf(kind string) handler.MapFunc {
	return func(_ context.Context, o client.Object) []reconcile.Request {
		l := o.GetLabels()
		if l[fleetv1.OwnerKindLabel] != kind {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[fleetv1.OwnerNamespaceLabel], Name: l[fleetv1.OwnerNameLabel]}}}
	}
}

// readyChanged passes Cluster updates whose Ready status changed (a heartbeat went
// stale or came back), not every heartbeat.
type readyChanged struct{ predicate.Funcs }

func (readyChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*fleetv1.Cluster)
	n, ok2 := e.ObjectNew.(*fleetv1.Cluster)
	if !ok1 || !ok2 {
		return false
	}
	status := func(c *fleetv1.Cluster) metav1.ConditionStatus {
		if r := conditions.Get(c, meta.ReadyCondition); r != nil {
			return r.Status
		}
		return ""
	}
	return status(o) != status(n)
}
