package fleet

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/placement"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollup"
)

// ClusterGroupReconciler rolls member Clusters' status up into their groups.
type ClusterGroupReconciler struct {
	Client client.Client
}

// SetupWithManager registers the controller.
func (r *ClusterGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&fleetv1.ClusterGroup{}).
		// Groups are few; any cluster change may move one in or out, so look at all.
		Watches(&fleetv1.Cluster{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
			var list fleetv1.ClusterGroupList
			if err := r.Client.List(ctx, &list); err != nil {
				return nil
			}
			out := make([]reconcile.Request, len(list.Items))
			for i := range list.Items {
				out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
			}
			return out
		})).
		Named("clustergroup").
		Complete(r)
}

// Reconcile computes one group's status from its members' status.
func (r *ClusterGroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var g fleetv1.ClusterGroup
	if err := r.Client.Get(ctx, req.NamespacedName, &g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patch := client.MergeFrom(g.DeepCopy())
	defer func() {
		if err := r.Client.Status().Patch(ctx, &g, patch); err != nil && !apierrors.IsNotFound(err) {
			retErr = kerrors.NewAggregate([]error{retErr, err})
			result = ctrl.Result{}
		}
	}()
	var clusters fleetv1.ClusterList
	if err := r.Client.List(ctx, &clusters); err != nil {
		return ctrl.Result{}, err
	}
	members, err := placement.Members(g, clusters.Items)
	if err != nil {
		conditions.MarkStalled(&g, "InvalidSelector", err.Error())
		return ctrl.Result{}, nil
	}
	g.Status = GroupStatus(g.Status, members, clusters.Items)
	cl, as := g.Status.Clusters, g.Status.Assignments
	switch {
	case cl.Total == 0:
		conditions.MarkReady(&g, meta.SucceededReason, "no member clusters")
	case cl.Ready < cl.Total || as.Failed > 0:
		conditions.MarkFailed(&g, meta.ClustersFailedReason,
			fmt.Sprintf("%d of %d clusters ready; %d of %d assignments failed", cl.Ready, cl.Total, as.Failed, as.Total))
	default:
		conditions.MarkReady(&g, meta.SucceededReason,
			fmt.Sprintf("%d clusters ready; %d of %d assignments ready", cl.Total, as.Ready, as.Total))
	}
	g.Status.ObservedGeneration = g.Generation
	return ctrl.Result{}, nil
}

// GroupStatus sums the named members' cluster and assignment counts.
func GroupStatus(prev fleetv1.ClusterGroupStatus, members []string, clusters []fleetv1.Cluster) fleetv1.ClusterGroupStatus {
	in := make(map[string]bool, len(members))
	for _, m := range members {
		in[m] = true
	}
	out := prev
	out.Clusters = fleetv1.ClusterMemberCounts{}
	out.Assignments = meta.AssignmentCounts{}
	for i := range clusters {
		c := &clusters[i]
		if !in[c.Name] {
			continue
		}
		out.Clusters.Total++
		if conditions.IsTrue(c, meta.ReadyCondition) {
			out.Clusters.Ready++
		}
		out.Assignments = rollup.Add(out.Assignments, c.Status.Assignments)
	}
	return out
}
