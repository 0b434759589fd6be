package fleet

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// AssignmentReconciler deletes Assignments whose deployment is gone, and lets a
// deleted Assignment go once its agent released it or its cluster is gone.
type AssignmentReconciler struct {
	Client client.Client
}

// SetupWithManager registers the controller.
func (r *AssignmentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	byOwner := func(kind string) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list fleetv1.AssignmentList
			if err := r.Client.List(ctx, &list, client.MatchingLabels{
				fleetv1.OwnerKindLabel: kind, fleetv1.OwnerNamespaceLabel: o.GetNamespace(), fleetv1.OwnerNameLabel: o.GetName(),
			}); err != nil {
				return nil
			}
			return assignmentRequests(list.Items)
		})
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&fleetv1.Assignment{}).
		Watches(&deliveryv1.Kustomization{}, byOwner(deliveryv1.KustomizationKind)).
		Watches(&fleetv1.Cluster{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list fleetv1.AssignmentList
			if err := r.Client.List(ctx, &list, client.MatchingLabels{fleetv1.ClusterLabel: o.GetName()}); err != nil {
				return nil
			}
			return assignmentRequests(list.Items)
		})).
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

func (r *AssignmentReconciler) ownerExists(ctx context.Context, a *fleetv1.Assignment) (bool, error) {
	o := a.Spec.Owner
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.Name}
	var obj client.Object
	switch o.Kind {
	case deliveryv1.KustomizationKind:
		obj = &deliveryv1.Kustomization{}
	default:
		return true, nil // kinds this hub does not know yet are left alone
	}
	err := r.Client.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return o.UID == "" || string(obj.GetUID()) == o.UID, nil
}
