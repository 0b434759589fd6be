package agentrollout

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/engine"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
	"github.com/flotilla-dev/flotilla/hub/delivery/placement"
)

// Reasons of the AgentRollout's conditions and events.
const (
	// AgentUpgradedReason: every targeted cluster runs the wanted agent version.
	AgentUpgradedReason = "AgentUpgraded"
	// UpgradeStartedReason (event): a new image is offered to the fleet.
	UpgradeStartedReason = "UpgradeStarted"
	// InvalidReason: the AgentRollout cannot be deployed as written.
	InvalidReason = "AgentRolloutInvalid"
)

// Reconciler hands the agent's Deployment to the fleet.
type Reconciler struct {
	Client   client.Client
	Store    engine.Publisher
	Sign     engine.Signer
	Recorder events.EventRecorder

	engine *engine.Engine
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	kind, ok := owners.Lookup(fleetv1.AgentRolloutKind)
	if !ok {
		return fmt.Errorf("%s is not a registered deployment kind", fleetv1.AgentRolloutKind)
	}
	r.engine = &engine.Engine{Client: r.Client, Recorder: r.Recorder, Sign: r.Sign}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&fleetv1.AgentRollout{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	// status.agentVersions follows the clusters' heartbeats, which the engine's
	// watches do not look at.
	singleton := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: fleetv1.AgentRolloutName}}}
	})
	b = b.Watches(&fleetv1.Cluster{}, singleton, builder.WithPredicates(predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*fleetv1.Cluster)
			n, ok2 := e.ObjectNew.(*fleetv1.Cluster)
			return ok1 && ok2 && o.Status.AgentVersion != n.Status.AgentVersion
		},
	}))
	return engine.Watch(b, r.Client, kind).Named("agentrollout").Complete(r)
}

// Reconcile renders the agent's Deployment for spec.image and deploys it.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var ar fleetv1.AgentRollout
	if err := r.Client.Get(ctx, req.NamespacedName, &ar); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ar.DeletionTimestamp != nil {
		// Its Assignments are released once it is gone (hub/fleet); their deletion
		// policy Orphan leaves every running agent in place.
		return ctrl.Result{}, nil
	}
	status := engine.StartStatusPatch(&ar)
	defer func() { status.Write(ctx, r.Client, &ar, &result, &retErr) }()

	want := ar.Spec.AgentVersion()
	if want == "" {
		msg := fmt.Sprintf("image %s has no tag: set spec.version to the version its agent reports", ar.Spec.Image)
		conditions.MarkStalled(&ar, InvalidReason, msg)
		r.event(&ar, corev1.EventTypeWarning, InvalidReason, msg)
		return ctrl.Result{}, nil
	}
	art, err := r.build(&ar, want)
	if err != nil {
		conditions.MarkFailed(&ar, meta.BuildFailedReason, err.Error())
		return ctrl.Result{}, err
	}
	if prev := ar.Status.Artifact; prev == nil || prev.Digest != art.Digest {
		r.event(&ar, corev1.EventTypeNormal, UpgradeStartedReason, fmt.Sprintf("offering agent %s (version %s) to the fleet", ar.Spec.Image, want))
	}
	ar.Status.Artifact = art
	d := engine.Deployment{
		Owner: &ar, Kind: fleetv1.AgentRolloutKind,
		Spec: AssignmentSpec(art, want),
		// Every Cluster unless the platform team narrows it.
		Placement:     ar.Spec.Placement,
		Rollout:       ar.Spec.Rollout,
		RolloutStatus: &ar.Status.Rollout,
	}
	if d.Placement.ClusterSelector == nil && len(d.Placement.ClusterGroups) == 0 {
		d.Placement = deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}}
	}
	var wasStalled string
	if c := conditions.Get(&ar, meta.StalledCondition); c != nil && c.Status == metav1.ConditionTrue {
		wasStalled = c.Message
	}
	res, err := r.engine.Deploy(ctx, d)
	if err != nil {
		return ctrl.Result{}, err
	}
	ar.Status.Clusters, ar.Status.Failures = res.Clusters, res.Failures
	clusters, err := r.targets(ctx, d.Placement)
	if err != nil {
		return ctrl.Result{}, err
	}
	ar.Status.AgentVersions = AgentVersions(clusters)
	var asgs fleetv1.AssignmentList
	if err := r.Client.List(ctx, &asgs, client.MatchingLabels(fleetv1.OwnerLabels(fleetv1.AgentRolloutKind, "", ar.Name))); err != nil {
		return ctrl.Result{}, err
	}
	if lost := LostAgents(clusters, asgs.Items, art.Digest); len(lost) > 0 {
		// The old agent is gone (Recreate) and the new one never reported: no agent
		// will ever say so on this cluster, so the hub does.
		msg := fmt.Sprintf("rollout of agent %s stopped: cluster %s has not reported since it was handed the new agent; %d clusters wait on their agent",
			want, lost[0], res.Plan.Waiting)
		if wasStalled != msg {
			r.event(&ar, corev1.EventTypeWarning, meta.RolloutStalledReason, msg)
		}
		conditions.MarkStalled(&ar, meta.RolloutStalledReason, msg)
		ar.Status.Failures = addFailures(ar.Status.Failures, lost, "no heartbeat since it was handed agent "+want)
	}
	if conditions.IsTrue(&ar, meta.ReadyCondition) {
		conditions.MarkReady(&ar, AgentUpgradedReason,
			fmt.Sprintf("agent version %s runs on %d of %d clusters", want, res.Clusters.Ready, res.Clusters.Targeted))
	}
	ar.Status.ObservedGeneration = ar.Generation
	return ctrl.Result{}, nil
}

// AssignmentSpec is what every targeted cluster gets: the agent's Deployment,
// applied by the agent as itself (a platform deployment), taking over the Deployment
// `flotilla cluster add` installed, waiting for it to be Available, never pruned,
// and left in place (Orphan) when the Assignment goes: releasing it must never
// delete the running agent. The agent reports Ready only once it runs version.
func AssignmentSpec(art *meta.Artifact, version string) fleetv1.AssignmentSpec {
	return fleetv1.AssignmentSpec{
		Artifact: fleetv1.SignedArtifact{URL: art.URL, Digest: art.Digest, Revision: art.Revision},
		Prune:    false,
		ApplySettings: meta.ApplySettings{
			Wait: true, Adopt: true, DeletionPolicy: meta.DeletionPolicyOrphan,
		},
		AgentVersion: version,
	}
}

// build renders, packs and stores the agent's Deployment; the same image gives the
// same digest.
func (r *Reconciler) build(ar *fleetv1.AgentRollout, version string) (*meta.Artifact, error) {
	manifests, err := Render(ar.Spec.Image)
	if err != nil {
		return nil, err
	}
	packed, err := artifact.Pack(map[string][]byte{"manifests.yaml": manifests})
	if err != nil {
		return nil, err
	}
	digest, err := r.Store.Put(packed)
	if err != nil {
		return nil, fmt.Errorf("storing the agent's Deployment: %w", err)
	}
	size := int64(len(packed))
	now := metav1.Now()
	if ar.Status.Artifact != nil && ar.Status.Artifact.Digest == digest {
		now = ar.Status.Artifact.LastUpdateTime
	}
	return &meta.Artifact{URL: r.Store.URL(digest), Revision: "agent@" + version,
		Digest: digest, Size: &size, LastUpdateTime: now}, nil
}

// targets lists the Clusters the placement selects.
func (r *Reconciler) targets(ctx context.Context, p deliveryv1.Placement) ([]fleetv1.Cluster, error) {
	var clusters fleetv1.ClusterList
	if err := r.Client.List(ctx, &clusters); err != nil {
		return nil, err
	}
	var groups fleetv1.ClusterGroupList
	if err := r.Client.List(ctx, &groups); err != nil {
		return nil, err
	}
	sel, err := placement.Select(p, clusters.Items, groups.Items)
	if err != nil {
		return nil, err
	}
	return sel.Clusters, nil
}

// LostAgents names, sorted, the clusters that were handed the agent of digest, have
// not reported it Ready, and whose heartbeat has stopped (Cluster not Ready): their
// old agent replaced itself and the new one never came up.
func LostAgents(clusters []fleetv1.Cluster, assignments []fleetv1.Assignment, digest string) []string {
	silent := map[string]bool{}
	for i := range clusters {
		if c := conditions.Get(&clusters[i], meta.ReadyCondition); c != nil && c.Status != metav1.ConditionTrue {
			silent[clusters[i].Name] = true
		}
	}
	var lost []string
	for i := range assignments {
		a := &assignments[i]
		cluster := a.Labels[fleetv1.ClusterLabel]
		if !silent[cluster] || a.DeletionTimestamp != nil || a.Spec.Artifact.Digest != digest {
			continue
		}
		if a.Status.AppliedDigest == digest && conditions.IsTrue(a, meta.ReadyCondition) {
			continue
		}
		lost = append(lost, cluster)
	}
	sort.Strings(lost)
	return lost
}

// addFailures adds a failure for each cluster not listed yet, within meta.MaxFailures.
func addFailures(failures []meta.ClusterFailure, clusters []string, msg string) []meta.ClusterFailure {
	listed := map[string]bool{}
	for _, f := range failures {
		listed[f.Cluster] = true
	}
	for _, c := range clusters {
		if !listed[c] && len(failures) < meta.MaxFailures {
			failures = append(failures, meta.ClusterFailure{Cluster: c, Message: msg})
		}
	}
	return failures
}

// AgentVersions counts clusters by Cluster.status.agentVersion, most common first
// (ties by version), at most meta.MaxVersionCounts entries; clusters that report none
// are left out.
func AgentVersions(clusters []fleetv1.Cluster) []meta.VersionCount {
	counts := map[string]int32{}
	for i := range clusters {
		if v := clusters[i].Status.AgentVersion; v != "" {
			counts[v]++
		}
	}
	if len(counts) == 0 {
		return nil
	}
	out := make([]meta.VersionCount, 0, len(counts))
	for v, n := range counts {
		out = append(out, meta.VersionCount{Version: v, Clusters: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Clusters != out[j].Clusters {
			return out[i].Clusters > out[j].Clusters
		}
		return out[i].Version < out[j].Version
	})
	if len(out) > meta.MaxVersionCounts {
		out = out[:meta.MaxVersionCounts]
	}
	return out
}

func (r *Reconciler) event(ar *fleetv1.AgentRollout, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ar, nil, typ, reason, "Reconcile", "%s", msg)
	}
}
