package fleet

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// ClusterGroupReconciler rolls member Clusters' status up into their groups.
//
// A Cluster change wakes only the groups whose selector matches the Cluster's old or
// new labels, and only when it can change a rollup (RollupChanged): a heartbeat, which
// at most moves lastHeartbeatTime, wakes none. A group then lists, from the cache, only
// the Clusters its selector matches.
type ClusterGroupReconciler struct {
	// Client is the manager's cached client.
	Client client.Client
	// Recorder records membership and health changes; none when nil.
	Recorder events.EventRecorder
}

// SetupWithManager registers the controller.
func (r *ClusterGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		// Its own status writes need no second look.
		For(&fleetv1.ClusterGroup{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fleetv1.Cluster{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.enqueue(ctx, q, labels.Set(e.Object.GetLabels()))
			},
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				old, okOld := e.ObjectOld.(*fleetv1.Cluster)
				updated, okNew := e.ObjectNew.(*fleetv1.Cluster)
				if okOld && okNew && !RollupChanged(old, updated) {
					return
				}
				r.enqueue(ctx, q, labels.Set(e.ObjectOld.GetLabels()), labels.Set(e.ObjectNew.GetLabels()))
			},
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.enqueue(ctx, q, labels.Set(e.Object.GetLabels()))
			},
			GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.enqueue(ctx, q, labels.Set(e.Object.GetLabels()))
			},
		}).
		Named("clustergroup").
		Complete(r)
}

// enqueue adds the groups that select any of the label sets. Groups are few and come
// from the cache.
func (r *ClusterGroupReconciler) enqueue(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], sets ...labels.Set) {
	var list fleetv1.ClusterGroupList
	if err := r.Client.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "listing cluster groups")
		return
	}
	for _, name := range GroupsSelecting(list.Items, sets...) {
		q.Add(reconcile.Request{NamespacedName: client.ObjectKey{Name: name}})
	}
}

// Reconcile computes one group's status from its members' status.
func (r *ClusterGroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var g fleetv1.ClusterGroup
	if err := r.Client.Get(ctx, req.NamespacedName, &g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := g.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(before.Status, g.Status) {
			return
		}
		// Locked: a diff against a cached copy that lags our last write could leave
		// stale counts in place, and our own writes do not wake us.
		err := r.Client.Status().Patch(ctx, &g, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil, apierrors.IsNotFound(err):
		case apierrors.IsConflict(err) && retErr == nil:
			result = ctrl.Result{RequeueAfter: 200 * time.Millisecond}
		default:
			retErr = kerrors.NewAggregate([]error{retErr, err})
			result = ctrl.Result{}
			return
		}
		recordGroupEvents(r.Recorder, before, &g)
	}()
	g.Status.ObservedGeneration = g.Generation
	selector, err := metav1.LabelSelectorAsSelector(&g.Spec.ClusterSelector)
	if err != nil {
		conditions.MarkStalled(&g, "InvalidSelector", "invalid clusterSelector: "+err.Error())
		return ctrl.Result{}, nil
	}
	var members fleetv1.ClusterList
	if err := r.Client.List(ctx, &members, client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return ctrl.Result{}, err
	}
	g.Status.Clusters, g.Status.Assignments = GroupRollup(members.Items)
	ready, reason, msg := GroupReadiness(g.Status.Clusters, g.Status.Assignments)
	if ready {
		conditions.MarkReady(&g, reason, msg)
	} else {
		conditions.MarkFailed(&g, reason, msg)
	}
	return ctrl.Result{}, nil
}
