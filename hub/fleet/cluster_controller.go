package fleet

import (
	"context"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/engine"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollup"
)

// ClusterFinalizer lets the hub delete a cluster's namespace before the Cluster goes.
const ClusterFinalizer = "fleet.flotilla.dev/cleanup"

// DefaultHeartbeatGrace is how old a heartbeat may be before the Cluster is not Ready.
const DefaultHeartbeatGrace = 40 * time.Second

// DefaultHeartbeatReport is how far lastHeartbeatTime may lag the Lease while Ready
// holds, as kubelet's node status report frequency: a healthy cluster costs one
// Cluster write per 5 minutes, not one per grace/2.
const DefaultHeartbeatReport = 5 * time.Minute

// AssignmentBatch is how long the Cluster controller gathers Assignment changes before
// it counts a cluster's Assignments again.
const AssignmentBatch = 2 * time.Second

// ClusterReconciler keeps each Cluster's hub namespace and status.
type ClusterReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// HeartbeatGrace: DefaultHeartbeatGrace when zero. A cluster whose Lease says it
	// renews less often gets 4 × its interval instead (HeartbeatGrace below).
	HeartbeatGrace time.Duration
	// AgentHeartbeat, when set, decides the interval announced on every agent's
	// Lease; nil announces none.
	AgentHeartbeat *AgentHeartbeat
	// HeartbeatReport is how far lastHeartbeatTime may fall behind the Lease while
	// Ready does not change; DefaultHeartbeatReport when zero, never less than grace/2.
	HeartbeatReport time.Duration
	// Now is time.Now unless a test sets it.
	Now func() time.Time
}

// SetupWithManager registers the controller.
func (r *ClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.HeartbeatGrace == 0 {
		r.HeartbeatGrace = DefaultHeartbeatGrace
	}
	if r.HeartbeatReport == 0 {
		r.HeartbeatReport = DefaultHeartbeatReport
	}
	r.HeartbeatReport = max(r.HeartbeatReport, r.HeartbeatGrace/2)
	if r.Now == nil {
		r.Now = time.Now
	}
	toCluster := func(_ context.Context, o client.Object) []reconcile.Request {
		if c := o.GetLabels()[fleetv1.ClusterLabel]; c != "" {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: c}}}
		}
		return nil
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.AgentHeartbeat != nil {
		// A new fleet interval: every Cluster looks at its Lease again.
		b = b.WatchesRawSource(source.Channel(r.AgentHeartbeat.events(), &handler.EnqueueRequestForObject{}))
	}
	return b.
		For(&fleetv1.Cluster{}).
		// A rollout changes every Assignment of a cluster within seconds, each twice
		// (the hub's spec, the agent's status): the counts are taken once per batch.
		Watches(&fleetv1.Assignment{}, engine.Coalesce(toCluster, AssignmentBatch)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			// The namespace, not a label the agent writes, says whose Lease it is.
			name, ok := strings.CutPrefix(o.GetNamespace(), fleetv1.ClusterNamespacePrefix)
			if o.GetName() != fleetv1.AgentLeaseName || !ok || name == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
		})).
		Named("cluster").
		Complete(r)
}

// Reconcile ensures the cluster's namespace and computes its status.
func (r *ClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var c fleetv1.Cluster
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ns := fleetv1.ClusterNamespace(c.Name)
	if c.DeletionTimestamp != nil {
		return ctrl.Result{}, r.finalize(ctx, &c, ns)
	}
	if !controllerutil.ContainsFinalizer(&c, ClusterFinalizer) {
		controllerutil.AddFinalizer(&c, ClusterFinalizer)
		if err := r.Client.Update(ctx, &c); err != nil {
			return ctrl.Result{}, err
		}
	}
	// Only a change a reader of the Cluster sees is written: most looks (every Lease
	// renewal, see heartbeat.go) find nothing new and cost no API call.
	before := c.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(before.Status, c.Status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, &c, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
			retErr = kerrors.NewAggregate([]error{retErr, err})
			result = ctrl.Result{}
		}
	}()

	if err := r.ensureNamespace(ctx, &c, ns); err != nil {
		return ctrl.Result{}, err
	}
	c.Status.Namespace = ns

	var list fleetv1.AssignmentList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return ctrl.Result{}, err
	}
	c.Status.Assignments = rollup.Assignments(list.Items)

	var lease coordinationv1.Lease
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: fleetv1.AgentLeaseName}, &lease)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	var renewed *time.Time
	grace := r.HeartbeatGrace
	// A failed announcement does not hold the verdict back: it is retried with backoff.
	var announceErr error
	if err == nil {
		announceErr = r.announce(ctx, &lease)
		renewed = leaseTime(&lease)
		grace = HeartbeatGrace(&lease, r.HeartbeatGrace)
		c.Status.AgentVersion = lease.Annotations[fleetv1.AgentVersionAnnotation]
		c.Status.KubernetesVersion = lease.Annotations[fleetv1.KubernetesVersionAnnotation]
	}
	r.checkVersionSkew(&c)
	requeue := r.heartbeat(&c, renewed, grace)
	c.Status.ObservedGeneration = c.Generation
	if announceErr != nil {
		return ctrl.Result{}, fmt.Errorf("announcing the heartbeat interval on the agent's Lease: %w", announceErr)
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// heartbeat sets Ready and lastHeartbeatTime from the agent's last renewal, and
// returns when to look again so that a silent agent turns the Cluster not Ready on time.
func (r *ClusterReconciler) heartbeat(c *fleetv1.Cluster, renewed *time.Time, grace time.Duration) time.Duration {
	hb := JudgeHeartbeat(renewed, r.Now(), grace)
	prev := conditions.Get(c, meta.ReadyCondition)
	changed := prev == nil || prev.Status != hb.Status
	wasReady := prev != nil && prev.Status == metav1.ConditionTrue
	conditions.Set(c, meta.ReadyCondition, hb.Status, hb.Reason, hb.Message)
	c.Status.LastHeartbeatTime = RecordedHeartbeat(c.Status.LastHeartbeatTime, renewed, changed, r.HeartbeatReport)
	switch {
	case hb.Status == metav1.ConditionTrue && !wasReady:
		r.event(c, corev1.EventTypeNormal, meta.HeartbeatFreshReason, "agent connected")
	case hb.Status == metav1.ConditionFalse && wasReady:
		r.event(c, corev1.EventTypeWarning, meta.HeartbeatStaleReason, hb.Message)
	}
	return hb.RecheckAfter
}

// announce writes the fleet's heartbeat interval on the agent's Lease when the Lease
// does not carry it yet: a merge patch of that one annotation, so it never conflicts
// with the agent (whose next renewal conflicts once and reads it).
func (r *ClusterReconciler) announce(ctx context.Context, lease *coordinationv1.Lease) error {
	if r.AgentHeartbeat == nil {
		return nil
	}
	d := r.AgentHeartbeat.Interval()
	if d <= 0 || lease.Annotations[fleetv1.HeartbeatIntervalAnnotation] == d.String() {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, fleetv1.HeartbeatIntervalAnnotation, d.String())
	if err := r.Client.Patch(ctx, lease, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

func (r *ClusterReconciler) event(c *fleetv1.Cluster, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(c, nil, typ, reason, "Heartbeat", "%s", msg)
	}
}

func (r *ClusterReconciler) ensureNamespace(ctx context.Context, c *fleetv1.Cluster, ns string) error {
	var existing corev1.Namespace
	err := r.Client.Get(ctx, types.NamespacedName{Name: ns}, &existing)
	if err == nil {
		if existing.Labels[fleetv1.ClusterLabel] != c.Name {
			return fmt.Errorf("namespace %s exists and does not belong to cluster %s", ns, c.Name)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	return r.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{fleetv1.ClusterLabel: c.Name},
	}})
}

// finalize deletes the cluster's namespace; its Assignments are released without
// waiting for an agent, as the assignment controller sees the Cluster going.
func (r *ClusterReconciler) finalize(ctx context.Context, c *fleetv1.Cluster, ns string) error {
	if !controllerutil.ContainsFinalizer(c, ClusterFinalizer) {
		return nil
	}
	var n corev1.Namespace
	err := r.Client.Get(ctx, types.NamespacedName{Name: ns}, &n)
	if err == nil && n.Labels[fleetv1.ClusterLabel] == c.Name && n.DeletionTimestamp == nil {
		if err := r.Client.Delete(ctx, &n); client.IgnoreNotFound(err) != nil {
			return err
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	controllerutil.RemoveFinalizer(c, ClusterFinalizer)
	return r.Client.Update(ctx, c)
}
