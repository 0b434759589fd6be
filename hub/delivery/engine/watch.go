package engine

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
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

// OwnerBatch is how long a deployment gathers its Assignments' changes before it rolls
// them up again: during a rollout every agent reports within seconds, and each look
// re-reads and re-plans every targeted cluster.
const OwnerBatch = time.Second

// Watch adds to a deployment kind's controller the watches the engine needs: a Cluster
// change that can move placement or readiness requeues the deployments it concerns, a
// ClusterGroup or Tenant change every deployment of the kind, and an Assignment's
// change its owner (coalesced over OwnerBatch).
func Watch(b *builder.Builder, c client.Reader, kind owners.Kind) *builder.Builder {
	all := func(ctx context.Context) []reconcile.Request {
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
	}
	everyDeployment := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request { return all(ctx) })
	return b.
		Watches(&fleetv1.Cluster{}, clusterHandler(c, kind.Kind, all), builder.WithPredicates(predicate.Or(
			predicate.LabelChangedPredicate{}, predicate.GenerationChangedPredicate{}, readyChanged{}, namespaceChanged{}))).
		Watches(&fleetv1.ClusterGroup{}, everyDeployment, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Tenants are few and change rarely: any change re-admits every deployment.
		Watches(&tenancyv1.Tenant{}, everyDeployment, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fleetv1.Assignment{}, Coalesce(ownerOf(kind.Kind), OwnerBatch))
}

// clusterHandler maps a Cluster change to the deployments it concerns. A new or
// deleted Cluster, new labels, a new hub namespace or a spec change (paused,
// variables) can change any deployment's placement: every deployment looks again. A
// change of Ready alone (an agent went silent or came back, the common case at scale)
// concerns only the deployments with an Assignment on that cluster, found from the
// cache by the cluster label, not every deployment of the fleet.
func clusterHandler(c client.Reader, kind string, all func(context.Context) []reconcile.Request) handler.EventHandler {
	onCluster := func(ctx context.Context, name string) []reconcile.Request {
		var list fleetv1.AssignmentList
		if err := c.List(ctx, &list, client.MatchingLabels{fleetv1.ClusterLabel: name, fleetv1.OwnerKindLabel: kind}); err != nil {
			log.FromContext(ctx).Error(err, "listing a cluster's Assignments", "cluster", name)
			return all(ctx)
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, ownerOf(kind)(ctx, &list.Items[i])...)
		}
		return out
	}
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], reqs []reconcile.Request) {
		for _, r := range reqs {
			q.Add(r)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, all(ctx))
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if placementMayChange(e.ObjectOld, e.ObjectNew) {
				add(q, all(ctx))
				return
			}
			add(q, onCluster(ctx, e.ObjectNew.GetName()))
		},
		DeleteFunc: func(ctx context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, all(ctx))
		},
		GenericFunc: func(ctx context.Context, _ event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, all(ctx))
		},
	}
}

// placementMayChange tells a Cluster update that can change which deployments target
// it or what they give it from one that changes only its readiness.
func placementMayChange(o, n client.Object) bool {
	oc, ok1 := o.(*fleetv1.Cluster)
	nc, ok2 := n.(*fleetv1.Cluster)
	if !ok1 || !ok2 {
		return true
	}
	return oc.Generation != nc.Generation || !equality.Semantic.DeepEqual(oc.Labels, nc.Labels) ||
		oc.Status.Namespace != nc.Status.Namespace || (oc.DeletionTimestamp == nil) != (nc.DeletionTimestamp == nil)
}

// namespaceChanged passes Cluster updates that give it its hub namespace: only then
// can it get Assignments.
type namespaceChanged struct{ predicate.Funcs }

func (namespaceChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*fleetv1.Cluster)
	n, ok2 := e.ObjectNew.(*fleetv1.Cluster)
	return ok1 && ok2 && o.Status.Namespace != n.Status.Namespace
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
