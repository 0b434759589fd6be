package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/healthexpr"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/spoke/apply"
	"github.com/flotilla-dev/flotilla/spoke/fetch"
	"github.com/flotilla-dev/flotilla/spoke/health"
	"github.com/flotilla-dev/flotilla/spoke/helm"
)

// stalledRetry is how soon an Assignment that cannot succeed without a change
// (an artifact that does not verify or does not parse) is looked at again, as a
// safety net; a change to the Assignment wakes the agent at once anyway.
const stalledRetry = 2 * time.Minute

// defaultApplyTimeout bounds one fetch-and-apply when spec.timeout is not set, so
// one stuck Assignment cannot hold a worker forever.
const defaultApplyTimeout = 5 * time.Minute

// defaultHealthTimeout is how long applied objects may take to become healthy when
// spec.timeout is not set.
const defaultHealthTimeout = 5 * time.Minute

// healthFailedPoll is how often an Assignment whose health check failed is looked
// at again, so that a rollout that recovers by itself turns Ready.
const healthFailedPoll = 10 * time.Second

// reconciler applies one Assignment to the spoke and reports in its status.
type reconciler struct {
	hub client.Client
	// live reads the hub without the cache; nil in tests that build a reconciler.
	live    client.Reader
	events  events.EventRecorder
	spoke   *spoke
	fetcher *fetch.Fetcher
	helm    *helm.Runner
	state   *stateStore
	// namespace is the agent's own namespace on the spoke (decryption keys).
	namespace string
	cluster   string
	resync    time.Duration
	poll      time.Duration // between health and dependency checks while waiting
	// watch notices changes to applied objects; nil when the drift watch is off.
	watch *driftWatch
	// version is the agent's own version (Options.Version); version.Version when nil.
	version func() string

	mu      sync.Mutex
	applied map[string]appliedRecord // by namespace/name
	// failures counts consecutive failed syncs, by namespace/name, for the backoff
	// of Assignments without spec.retryInterval.
	failures map[string]int
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := &fleetv1.Assignment{}
	if err := r.hub.Get(ctx, req.NamespacedName, a); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !a.DeletionTimestamp.IsZero() {
		return r.release(ctx, a)
	}

	before := a.DeepCopy()
	var res ctrl.Result
	var syncErr error
	rec := r.last(req.NamespacedName)
	// Before anything else, not even a dependency check or taking over an older
	// agent's list: is this what the hub signed, for this cluster, in this place?
	verifyErr := r.fetcher.Verify(a)
	if verifyErr == nil && len(a.Status.Entries) > 0 {
		// Written by an older agent: from now on the list lives on the spoke, and the
		// status write below clears it on the hub. Only a signed Assignment's list is
		// taken: a record on the spoke is what prune and the offline mode go by.
		if err := r.adoptHubEntries(ctx, a); err != nil {
			return ctrl.Result{}, err
		}
		a.Status.Entries = nil
	}
	if verifyErr != nil {
		r.stall(a, meta.VerificationFailedReason, fmt.Sprintf("revision %s not applied: %v", revisionOf(a.Spec.Artifact), verifyErr))
		res = ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}
	} else if len(a.Spec.UnplacedDependencies) > 0 && !a.Spec.Suspend {
		// The hub knows both placements: this will not change without a change there,
		// which rewrites the Assignment and wakes the agent.
		msg := fmt.Sprintf("dependency %s is not placed on cluster %s: nothing is applied until it is, or the dependency is removed",
			strings.Join(a.Spec.UnplacedDependencies, ", "), r.cluster)
		if ready := conditions.Get(a, meta.ReadyCondition); ready == nil || ready.Reason != meta.DependencyNotPlacedReason {
			r.event(a, corev1.EventTypeWarning, meta.DependencyNotPlacedReason, "DependsOn", msg)
		}
		conditions.MarkStalled(a, meta.DependencyNotPlacedReason, msg)
		a.Status.Message = msg
		a.Status.ObservedGeneration = a.Generation
		res = ctrl.Result{RequeueAfter: r.resyncFor(a)}
	} else if waiting := r.dependenciesNotReady(ctx, a); waiting != "" && !a.Spec.Suspend {
		// Nothing is applied, nor corrected, until what this builds on is in place.
		conditions.MarkReconciling(a, meta.DependencyNotReadyReason, waiting)
		a.Status.Message = waiting
		res = ctrl.Result{RequeueAfter: r.poll}
	} else {
		step, wait := nextStep(a, rec, time.Now(), r.resyncFor(a))
		if step == stepApply && rec.matches(a) && r.live != nil {
			// The agent applied this very spec, yet the status does not say so: the
			// cache may not have seen the status the agent just wrote (a wake-up right
			// after an apply). Ask the hub before applying it all again.
			live := &fleetv1.Assignment{}
			if err := r.live.Get(ctx, req.NamespacedName, live); err == nil && live.Generation == a.Generation {
				a.Status = live.Status
				a.ResourceVersion = live.ResourceVersion
				before = a.DeepCopy()
				step, wait = nextStep(a, rec, time.Now(), r.resyncFor(a))
			}
		}
		// Objects the watch saw changed are checked now, whatever the step; a
		// Helm release stays on the resync path (its objects carry no agent label).
		var suspects map[string]bool
		if r.watch != nil && a.Spec.Helm == nil && rec.matches(a) {
			suspects = r.watch.take(req.String(), rec.refs)
		}
		switch {
		case step == stepIdle && suspects == nil:
			return ctrl.Result{RequeueAfter: wait}, nil
		case a.Spec.Helm != nil:
			// Helm waits for its own objects: a release has no separate health step.
			res, syncErr = r.syncHelm(ctx, a, rec, step == stepResync)
		case suspects != nil && (step == stepIdle || step == stepHealth):
			res, syncErr = r.sync(ctx, a, rec, syncOptions{resync: true, only: suspects})
		case step == stepHealth:
			res, syncErr = r.checkHealth(ctx, a, rec)
		case step == stepResync:
			res, syncErr = r.sync(ctx, a, rec, syncOptions{resync: true})
		default:
			res, syncErr = r.sync(ctx, a, rec, syncOptions{})
		}
	}
	if err := r.hub.Status().Patch(ctx, a, client.MergeFrom(before)); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, errors.Join(syncErr, fmt.Errorf("writing status: %w", err))
	}
	if syncErr != nil {
		// A failed sync is tried again after spec.retryInterval, as Flux does; the
		// failure is in the status and an Event already.
		retry := r.retryAfter(a)
		ctrl.LoggerFrom(ctx).Info("sync failed", "error", syncErr.Error(), "retryAfter", retry.String())
		return ctrl.Result{RequeueAfter: retry}, nil
	}
	r.succeeded(req.NamespacedName)
	return res, nil
}

// retryAfter is how soon a failed sync of a is tried again: spec.retryInterval, or
// an exponential backoff from 100 ms capped at the Assignment's resync interval.
func (r *reconciler) retryAfter(a *fleetv1.Assignment) time.Duration {
	key := client.ObjectKeyFromObject(a).String()
	r.mu.Lock()
	r.failures[key]++
	n := r.failures[key]
	r.mu.Unlock()
	return retryDelay(a, n, r.resyncFor(a))
}

func (r *reconciler) succeeded(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failures, key.String())
}

// resyncFor is how often a's whole spoke state is checked (resyncInterval).
func (r *reconciler) resyncFor(a *fleetv1.Assignment) time.Duration {
	return resyncInterval(a, r.resync)
}

// dependenciesNotReady names the first Assignment of spec.dependsOn that is not
// Ready on its current artifact, as "waiting for <name>: <why>", or returns "".
func (r *reconciler) dependenciesNotReady(ctx context.Context, a *fleetv1.Assignment) string {
	for _, name := range a.Spec.DependsOn {
		dep := &fleetv1.Assignment{}
		err := r.hub.Get(ctx, types.NamespacedName{Namespace: a.Namespace, Name: name}, dep)
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Sprintf("waiting for %s: it does not exist", name)
		case err != nil:
			return fmt.Sprintf("waiting for %s: %v", name, err)
		}
		if why := notReady(dep); why != "" {
			return fmt.Sprintf("waiting for %s: %s", name, why)
		}
	}
	return ""
}

// sync fetches, verifies and applies the Assignment's artifact, prunes what it
// dropped, checks health, and writes the outcome into a's status. A resync of an
// unchanged revision is a drift check: only objects that differ from the artifact
// are applied (or, in Warn mode, only reported). It returns an error only for what
// is worth retrying with backoff.
func (r *reconciler) sync(ctx context.Context, a *fleetv1.Assignment, rec appliedRecord, so syncOptions) (ctrl.Result, error) {
	mode := driftMode(a)
	art := a.Spec.Artifact
	rev := revisionOf(art)
	suspended := a.Spec.Suspend
	if suspended {
		if a.Status.AppliedDigest != art.Digest {
			// Nothing of this revision runs here: a suspended deployment gets nothing new.
			msg := fmt.Sprintf("suspended: revision %s is not applied", rev)
			a.Status.Message = msg
			conditions.MarkReconciling(a, meta.SuspendedReason, msg)
			a.Status.ObservedGeneration = a.Generation
			return ctrl.Result{RequeueAfter: r.resyncFor(a)}, nil
		}
		if mode != meta.DriftDisabled {
			// What runs is compared, never corrected.
			mode = meta.DriftWarn
		} else {
			so.resync = true
		}
	}
	if so.resync && mode == meta.DriftDisabled {
		// Nothing to compare: only keep an eye on health.
		if so.only == nil {
			rec.at = time.Now()
		}
		a.Status.ObservedGeneration = a.Generation
		r.store(a, rec)
		return r.checkHealth(ctx, a, rec)
	}
	timeout := applyTimeout(a)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	log := ctrl.LoggerFrom(ctx)
	owner := a.Namespace + "/" + a.Name
	if why := r.identityProblem(a); why != "" {
		r.stall(a, meta.VerificationFailedReason, fmt.Sprintf("revision %s not applied: %s", rev, why))
		return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
	}

	files, err := r.fetcher.Fetch(ctx, a)
	if err != nil {
		if fetch.IsVerificationError(err) {
			r.stall(a, meta.VerificationFailedReason, fmt.Sprintf("revision %s not applied: %v", rev, err))
			return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
		}
		r.fail(a, meta.ArtifactFailedReason, fmt.Sprintf("revision %s: %v", rev, err))
		return ctrl.Result{}, err
	}
	objs, err := apply.Parse(files)
	if err != nil {
		r.stall(a, meta.ApplyFailedReason, fmt.Sprintf("revision %s not applied, its manifests are invalid: %v", rev, err))
		return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
	}
	// Substitution and decryption (spoke/postbuild, spoke/sops) happen here.
	objs, err = r.transform(ctx, a, objs)
	if err != nil {
		r.fail(a, meta.ApplyFailedReason, fmt.Sprintf("revision %s not applied: %v", rev, err))
		return ctrl.Result{}, err
	}

	user := serviceAccountUser(a)
	c, err := r.spoke.clientFor(user)
	if err != nil {
		r.fail(a, meta.ApplyFailedReason, fmt.Sprintf("spoke client for %s: %v", user, err))
		return ctrl.Result{}, err
	}
	// A revision the spoke already runs (this one, before the agent restarted, or at
	// the last resync) is checked for drift rather than applied blindly.
	check := mode != meta.DriftDisabled && a.Status.AppliedDigest == art.Digest
	engine := apply.New(c, FieldManager(a))

	// What was applied before is what the spoke's record lists. Before applying, the
	// record gets every object this pass may create too: an agent stopped in the
	// middle of the pass then still knows them, and prunes them once gone from the
	// source. A steady state changes nothing in the record and writes nothing.
	saved, recorded, err := r.inventory(ctx, a)
	if err == nil {
		err = r.state.save(ctx, a, saved.specOr(a.Spec), apply.Merge(recorded, engine.Plan(objs, a.Spec.TargetNamespace)))
	}
	if err != nil {
		r.fail(a, meta.ApplyFailedReason, fmt.Sprintf("revision %s not applied: %v", rev, err))
		return ctrl.Result{}, err
	}
	opts := apply.Options{
		Owner: owner, TargetNamespace: a.Spec.TargetNamespace, Force: a.Spec.Force, Adopt: a.Spec.Adopt,
		DriftCheck: check, WarnOnly: mode == meta.DriftWarn,
	}
	if check {
		opts.Only = so.only
	}
	began := time.Now()
	res, err := engine.Apply(ctx, objs, opts)
	observeApply(began, err)
	if r.watch != nil {
		r.watch.applied(owner, res.Changes, opts.Only == nil && err == nil)
	}
	if check {
		r.reportDrift(a, res, mode, suspended)
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s (spec.timeout): %w", timeout, err)
	}
	if err != nil {
		// Objects applied before the failure are ours now: the record already lists
		// them (and those the pass did not reach), so a later prune finds them.
		a.Status.Inventory = int32(len(apply.Merge(recorded, res.Entries())))
		msg := fmt.Sprintf("applying revision %s: %v", rev, err)
		if user != "" && apply.IsForbidden(err) {
			msg = fmt.Sprintf("applying revision %s as %s, which is not allowed: %v", rev, user, err)
		}
		r.fail(a, meta.ApplyFailedReason, msg)
		return ctrl.Result{}, err
	}

	entries := res.Entries()
	pruned := 0
	if a.Spec.Prune {
		dropped := apply.Diff(recorded, entries)
		began := time.Now()
		del, err := engine.Delete(ctx, dropped, owner)
		pruned = len(del.Deleted)
		observePrune(began, pruned, err)
		if err != nil {
			entries = apply.Merge(entries, del.Failed)
			r.setApplied(a, entries)
			if err := r.state.save(ctx, a, a.Spec, entries); err != nil {
				log.Error(err, "recording the inventory on the spoke: it keeps listing what was pruned")
			}
			r.fail(a, meta.PruneFailedReason, fmt.Sprintf("revision %s applied, but pruning failed: %v", rev, err))
			return ctrl.Result{}, err
		}
	}

	previous := a.Status.AppliedDigest
	r.setApplied(a, entries)
	msg := appliedMessage(rev, res, pruned)
	switch {
	case suspended:
		msg = fmt.Sprintf("suspended: revision %s runs, left as it is (%s)", rev, res.Summary())
	case so.only != nil && !changed(previous, art.Digest, res, pruned) && rec.message != "":
		// A check of what the watch saw change, which found nothing to do, keeps
		// the message of the apply.
		msg = rec.message
	}
	a.Status.ObservedGeneration = a.Generation
	if changed(previous, art.Digest, res, pruned) {
		// The status says it (Ready, appliedRevision, the message): no Event on the hub
		// for a success, which would be one more write per Assignment and revision,
		// 10,000 for a commit to 1,000 clusters × 10 deployments. Failures and drift
		// have their Events.
		log.Info(msg, "revision", rev, "digest", art.Digest)
	}
	now := time.Now()
	next := appliedRecord{
		uid: a.UID, generation: a.Generation, digest: art.Digest,
		requestedAt: a.Annotations[meta.ReconcileRequestedAtAnnotation],
		at:          now, refs: res.Refs(), message: msg,
		healthSince: rec.healthSince, healthy: rec.healthy,
	}
	if so.only != nil {
		// A check of what the watch saw change does not put off the full one.
		next.at = rec.at
	}
	// A new revision, or anything the agent changed, starts a new wait for health; an
	// unchanged resync keeps the running one (its timeout does not start over).
	if !rec.matches(a) || rec.healthSince.IsZero() || changed(previous, art.Digest, res, pruned) {
		next.healthSince, next.healthy = now, false
	}
	r.store(a, next)
	if err := r.state.save(ctx, a, a.Spec, entries); err != nil {
		// The record still lists all this pass applied and what it pruned (written
		// before the pass): nothing is forgotten, and the next sync writes it again.
		log.Error(err, "recording the applied state on the spoke")
	}
	return r.checkHealth(ctx, a, next)
}

// checkHealth sets Ready from the health of what was applied (when spec.wait) and of
// spec.healthChecks: True when all are Current, Unknown while they may still get
// there, False with HealthCheckFailed once one failed or the timeout passed.
func (r *reconciler) checkHealth(ctx context.Context, a *fleetv1.Assignment, rec appliedRecord) (ctrl.Result, error) {
	c, err := r.spoke.clientFor(serviceAccountUser(a))
	if err != nil {
		r.fail(a, meta.ApplyFailedReason, fmt.Sprintf("spoke client: %v", err))
		return ctrl.Result{}, err
	}
	// The hub compiled them before signing; a failure here is an agent older or newer
	// than the hub's CEL, and waiting would not help.
	checks, err := healthexpr.CompileCached(a.Spec.HealthCheckExprs)
	if err != nil {
		msg := "healthCheckExprs: " + err.Error()
		a.Status.Message = msg
		conditions.MarkFailed(a, meta.HealthCheckFailedReason, msg)
		return ctrl.Result{RequeueAfter: r.resyncFor(a)}, nil
	}
	refs := healthRefs(a, rec.refs)
	var first string
	var worst health.Result
	for _, ref := range refs {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(ref.GroupVersionKind())
		var h health.Result
		switch err := c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, u); {
		case apierrors.IsNotFound(err), apimeta.IsNoMatchError(err):
			h = health.Compute(nil)
		case err != nil:
			return ctrl.Result{}, fmt.Errorf("reading %s for its health: %w", ref, err)
		default:
			h = health.ComputeWith(u, checks)
		}
		if h.Status == health.Current {
			continue
		}
		first, worst = ref.String(), h
		if h.Status == health.Failed {
			break
		}
	}
	if first == "" {
		// The agent's own Deployment is healthy only once the agent it starts runs.
		if want, running := a.Spec.AgentVersion, r.agentVersion(); want != "" && want != running {
			first, worst = "agent", health.Result{Status: health.InProgress,
				Message: fmt.Sprintf("running version %s, waiting for version %s", running, want)}
		}
	}
	timeout := healthTimeout(a)
	elapsed := time.Since(rec.healthSince)
	a.Status.Message = rec.message
	switch {
	case first == "":
		// Healthy is a success: Ready says it, no Event (see sync).
		rec.healthy = true
		r.store(a, rec)
		conditions.MarkReady(a, meta.SucceededReason, rec.message)
		return ctrl.Result{RequeueAfter: max(time.Until(rec.at.Add(r.resyncFor(a))), time.Second)}, nil
	case worst.Status == health.Failed || elapsed >= timeout:
		msg := fmt.Sprintf("%s: %s", first, worst.Message)
		if worst.Status != health.Failed {
			msg = fmt.Sprintf("%s not healthy after %s: %s", first, timeout, worst.Message)
		}
		if ready := conditions.Get(a, meta.ReadyCondition); ready == nil || ready.Reason != meta.HealthCheckFailedReason {
			r.event(a, corev1.EventTypeWarning, meta.HealthCheckFailedReason, "HealthCheck", msg)
		}
		a.Status.Message = msg
		conditions.MarkFailed(a, meta.HealthCheckFailedReason, msg)
		return ctrl.Result{RequeueAfter: min(healthFailedPoll, r.resyncFor(a))}, nil
	default:
		msg := fmt.Sprintf("waiting for %s: %s", first, worst.Message)
		conditions.MarkReconciling(a, meta.ProgressingReason, msg)
		return ctrl.Result{RequeueAfter: min(r.poll, timeout-elapsed+10*time.Millisecond)}, nil
	}
}

// reportDrift records what a drift check found: Drifted, status.drift and an Event.
func (r *reconciler) reportDrift(a *fleetv1.Assignment, res *apply.Result, mode string, suspended bool) {
	drifted := res.Drifted()
	if len(drifted) == 0 {
		if conditions.Get(a, meta.DriftedCondition) != nil {
			conditions.Set(a, meta.DriftedCondition, metav1.ConditionFalse, meta.NoDriftReason, "the spoke matches the artifact")
		}
		return
	}
	reason, verb := meta.DriftCorrectedReason, "corrected"
	switch {
	case suspended:
		reason, verb = meta.DriftDetectedReason, "left as found (the deployment is suspended)"
	case mode == meta.DriftWarn:
		reason, verb = meta.DriftDetectedReason, "left as found (drift detection mode Warn)"
	}
	msg := driftMessage(drifted, verb)
	observeDrift(len(drifted), mode == meta.DriftWarn)
	now := metav1.Now()
	d := a.Status.Drift
	if d == nil {
		d = &fleetv1.DriftStatus{}
	}
	d.Corrections += int64(len(drifted))
	d.LastObject = drifted[len(drifted)-1].Ref.String()
	d.LastTime = &now
	a.Status.Drift = d
	conditions.Set(a, meta.DriftedCondition, metav1.ConditionTrue, reason, msg)
	r.event(a, corev1.EventTypeWarning, reason, "DriftCheck", msg)
}

// setApplied reports the applied revision and the inventory's size; the inventory
// itself is in the agent's record on the spoke.
func (r *reconciler) setApplied(a *fleetv1.Assignment, entries []fleetv1.InventoryEntry) {
	a.Status.AppliedDigest = a.Spec.Artifact.Digest
	a.Status.AppliedRevision = a.Spec.Artifact.Revision
	a.Status.Inventory = int32(len(entries))
}

// inventory returns a's record on the spoke (nil when there is none) and the
// objects applied for a. An Assignment last applied by an older agent may have its
// list only in the hub's status: that one is taken then.
func (r *reconciler) inventory(ctx context.Context, a *fleetv1.Assignment) (*savedAssignment, []fleetv1.InventoryEntry, error) {
	saved, err := r.state.load(ctx, a)
	if err != nil {
		return nil, nil, err
	}
	var entries []fleetv1.InventoryEntry
	if saved != nil {
		entries = saved.Entries
	}
	if len(entries) == 0 {
		entries = a.Status.Entries
	}
	return saved, entries, nil
}

// adoptHubEntries moves the inventory an older agent wrote in the hub's status into
// the spoke's record, unless the record has one already (it is the newer).
func (r *reconciler) adoptHubEntries(ctx context.Context, a *fleetv1.Assignment) error {
	saved, entries, err := r.inventory(ctx, a)
	if err != nil || (saved != nil && len(saved.Entries) > 0) {
		return err
	}
	return r.state.save(ctx, a, saved.specOr(a.Spec), entries)
}

// fail records a failure that may go away by itself; stall one that needs a change.
func (r *reconciler) fail(a *fleetv1.Assignment, reason, msg string) {
	a.Status.Message = msg
	conditions.MarkFailed(a, reason, msg)
	r.event(a, corev1.EventTypeWarning, reason, "Apply", msg)
}

func (r *reconciler) stall(a *fleetv1.Assignment, reason, msg string) {
	a.Status.Message = msg
	conditions.MarkStalled(a, reason, msg)
	r.event(a, corev1.EventTypeWarning, reason, "Apply", msg)
}

// release deals with a deleted Assignment's objects as spec.deletionPolicy says
// (deletes them, or orphans them), and says so with Released=True. The hub removes the
// finalizer; the agent only writes status.
func (r *reconciler) release(ctx context.Context, a *fleetv1.Assignment) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(a, fleetv1.AssignmentFinalizer) || conditions.IsTrue(a, meta.ReleasedCondition) {
		return ctrl.Result{}, nil
	}
	before := a.DeepCopy()
	// The spoke's record lists what to prune (the hub's status, for an Assignment an
	// older agent applied and never recorded).
	saved, entries, err := r.inventory(ctx, a)
	if err != nil {
		return ctrl.Result{}, err
	}
	a.Status.Entries = nil
	n := len(entries)
	del := &apply.DeleteResult{}
	var relErr error
	prune := deletesOnRelease(a)
	var helmMsg string
	if a.Spec.Helm != nil {
		prune = false
		helmMsg, relErr = r.releaseHelm(ctx, a)
	} else if prune {
		c, err := r.spoke.clientFor(serviceAccountUser(a))
		if err != nil {
			return ctrl.Result{}, err
		}
		began := time.Now()
		del, relErr = apply.New(c, FieldManager(a)).Delete(ctx, entries, a.Namespace+"/"+a.Name)
		observePrune(began, len(del.Deleted), relErr)
	}
	if relErr != nil {
		msg := fmt.Sprintf("pruning failed: %v", relErr)
		if err := r.state.save(ctx, a, saved.specOr(a.Spec), del.Failed); err != nil {
			relErr = errors.Join(relErr, err)
		}
		a.Status.Inventory = int32(len(del.Failed))
		a.Status.Message = msg
		conditions.Set(a, meta.ReleasedCondition, metav1.ConditionFalse, meta.PruneFailedReason, msg)
		r.event(a, corev1.EventTypeWarning, meta.PruneFailedReason, "Release", msg)
	} else {
		msg := releasedMessage(prune, del, n)
		if a.Spec.Helm != nil {
			msg = helmMsg
		}
		a.Status.Inventory = 0
		a.Status.Message = msg
		conditions.Set(a, meta.ReleasedCondition, metav1.ConditionTrue, meta.SucceededReason, msg)
		r.event(a, corev1.EventTypeNormal, meta.SucceededReason, "Release", msg)
		ctrl.LoggerFrom(ctx).Info(msg)
	}
	if err := r.hub.Status().Patch(ctx, a, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, errors.Join(relErr, fmt.Errorf("writing status: %w", err))
	}
	r.forget(client.ObjectKeyFromObject(a))
	if relErr == nil {
		if err := r.state.remove(ctx, a); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, relErr
}

// event records msg on the Assignment in the hub; an Event's note holds at most 1kB.
func (r *reconciler) event(a *fleetv1.Assignment, typ, reason, action, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	r.events.Eventf(a, nil, typ, reason, action, "%s", msg)
}

func (r *reconciler) last(key types.NamespacedName) appliedRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied[key.String()]
}

func (r *reconciler) store(a *fleetv1.Assignment, rec appliedRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied[client.ObjectKeyFromObject(a).String()] = rec
}

func (r *reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.applied, key.String())
	delete(r.failures, key.String())
	r.mu.Unlock()
	if r.watch != nil {
		r.watch.forget(key.String())
	}
}

// syncOptions says what kind of sync to run.
type syncOptions struct {
	// resync checks an unchanged revision for drift rather than applying it.
	resync bool
	// only, when not nil, limits the drift check to these inventory IDs (what the
	// watch saw change).
	only map[string]bool
}

// identityProblem says why a tenant's Assignment may not be applied as it names its
// identity: the agent's own identity never applies a tenant's objects, whatever the
// Assignment says (the hub signs the statement, and checks the same rule; this is the
// wall on the spoke's side).
func (r *reconciler) identityProblem(a *fleetv1.Assignment) string {
	if a.Spec.Tenant == "" {
		return ""
	}
	ns := a.Spec.ServiceAccountNamespace
	if ns == "" {
		ns = a.Spec.TargetNamespace
	}
	switch {
	case a.Spec.ServiceAccountName == "":
		return fmt.Sprintf("it belongs to Tenant %s but names no service account, and the agent never applies a tenant's objects as itself", a.Spec.Tenant)
	case ns == r.namespace:
		return fmt.Sprintf("it belongs to Tenant %s but its service account is in the agent's namespace %s", a.Spec.Tenant, r.namespace)
	}
	return ""
}

// agentVersion is the version this agent runs, compared with spec.agentVersion.
func (r *reconciler) agentVersion() string {
	if r.version == nil {
		return version.Version
	}
	return r.version()
}
