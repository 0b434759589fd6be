package fleet

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
)

// AssignmentReconciler deletes Assignments whose deployment is gone, and lets a
// deleted Assignment go once its agent released it or its cluster is gone.
type AssignmentReconciler struct {
	Client client.Client

	// live confirms an owner the cache says is gone before its Assignments go: the
	// owner's metadata informer may lag the informer its controller acted on.
	live client.Reader
}

// SetupWithManager registers the controller.
func (r *AssignmentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.live = mgr.GetAPIReader()
	byOwner := func(kind string) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list fleetv1.AssignmentList
			if err := r.Client.List(ctx, &list, client.MatchingLabels(fleetv1.OwnerLabels(kind, o.GetNamespace(), o.GetName()))); err != nil {
				return nil
			}
			return assignmentRequests(list.Items)
		})
	}
	b := ctrl.NewControllerManagedBy(mgr).For(&fleetv1.Assignment{})
	// Owners' deletions wake their Assignments at once, from the metadata informer
	// ownerExists reads, so that the check sees the deletion that woke it. Owners of
	// kinds this hub does not serve are found gone on the Assignment's own events.
	for _, k := range owners.All() {
		b = b.WatchesMetadata(k.New(), byOwner(k.Kind), builder.WithPredicates(goneOrGoing{}))
	}
	return b.
		Watches(&fleetv1.Cluster{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list fleetv1.AssignmentList
			if err := r.Client.List(ctx, &list, client.MatchingLabels{fleetv1.ClusterLabel: o.GetName()}); err != nil {
				return nil
			}
			return assignmentRequests(list.Items)
		}), builder.WithPredicates(goneOrGoing{})).
		Named("assignment").
		Complete(r)
}

func assignmentRequests(items []fleetv1.Assignment) []reconcile.Request {
	out := make([]reconcile.Request, len(items))
	for i := range items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&items[i])}
	}
	return out
}

// Reconcile releases or garbage-collects one Assignment.
func (r *AssignmentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var a fleetv1.Assignment
	if err := r.Client.Get(ctx, req.NamespacedName, &a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if a.DeletionTimestamp != nil {
		if !controllerutil.ContainsFinalizer(&a, fleetv1.AssignmentFinalizer) {
			return ctrl.Result{}, nil
		}
		gone, err := r.clusterGone(ctx, &a)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !gone && !conditions.IsTrue(&a, meta.ReleasedCondition) {
			return ctrl.Result{}, nil // the agent's status update wakes us
		}
		controllerutil.RemoveFinalizer(&a, fleetv1.AssignmentFinalizer)
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Update(ctx, &a))
	}
	exists, err := r.ownerExists(ctx, &a)
	if err != nil || exists {
		return ctrl.Result{}, err
	}
	o := a.Spec.Owner
	log.FromContext(ctx).Info("owner gone, deleting Assignment", "ownerKind", o.Kind, "ownerAPIVersion", o.APIVersion,
		"ownerNamespace", o.Namespace, "ownerName", o.Name, "ownerUID", o.UID)
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, &a))
}

func (r *AssignmentReconciler) clusterGone(ctx context.Context, a *fleetv1.Assignment) (bool, error) {
	var c fleetv1.Cluster
	err := r.Client.Get(ctx, types.NamespacedName{Name: a.Labels[fleetv1.ClusterLabel]}, &c)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return err == nil && c.DeletionTimestamp != nil, client.IgnoreNotFound(err)
}

// ownerExists reads the owner's metadata only, whatever its kind: an owner of a kind
// the API server does not serve is gone, as is one recreated under another UID.
func (r *AssignmentReconciler) ownerExists(ctx context.Context, a *fleetv1.Assignment) (bool, error) {
	o := a.Spec.Owner
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil || o.Kind == "" {
		log.FromContext(ctx).Info("Assignment names no valid owner", "owner", o)
		return false, nil
	}
	exists, err := ownerIn(ctx, r.Client, gv.WithKind(o.Kind), o)
	if err != nil || exists || r.live == nil {
		return exists, err
	}
	return ownerIn(ctx, r.live, gv.WithKind(o.Kind), o)
}

func ownerIn(ctx context.Context, c client.Reader, gvk schema.GroupVersionKind, o fleetv1.DeploymentReference) (bool, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	err := c.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: o.Name}, obj)
	switch {
	case apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return o.UID == "" || string(obj.GetUID()) == o.UID, nil
}

// goneOrGoing passes the events of an owner or a Cluster that can release or collect
// an Assignment: its deletion, or the start of it. Its status writes (every rollout,
// every heartbeat report) would otherwise look at each of its Assignments again.
type goneOrGoing struct{ predicate.Funcs }

func (goneOrGoing) Create(event.CreateEvent) bool { return false }

func (goneOrGoing) Update(e event.UpdateEvent) bool {
	return e.ObjectNew.GetDeletionTimestamp() != nil || e.ObjectOld.GetUID() != e.ObjectNew.GetUID()
}

func (goneOrGoing) Delete(event.DeleteEvent) bool { return true }
