package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/fetch"
	"github.com/flotilla-dev/flotilla/spoke/helm"
	"github.com/flotilla-dev/flotilla/spoke/postbuild"
)

// syncHelm runs the Helm release of an Assignment of a HelmRelease (spec.helm) with
// spoke/helm: verify and fetch as for manifests, gather the substitution variables,
// then let spoke/helm install, upgrade, test, remediate or check drift, and report.
// Helm's own wait replaces the health check: Ready means the release is deployed
// (and its tests passed or are ignored).
func (r *reconciler) syncHelm(ctx context.Context, a *fleetv1.Assignment, rec appliedRecord, resync bool) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	art := a.Spec.Artifact
	rev := revisionOf(art)
	if why := r.identityProblem(a); why != "" {
		r.stall(a, meta.VerificationFailedReason, fmt.Sprintf("revision %s not released: %s", rev, why))
		return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
	}
	if a.Spec.Suspend {
		// Suspend holds on the spoke: no install, upgrade, remediation or drift
		// correction; the release runs as it is and its last status stays.
		a.Status.ObservedGeneration = a.Generation
		if a.Status.AppliedDigest != art.Digest {
			msg := fmt.Sprintf("suspended: revision %s is not released", rev)
			a.Status.Message = msg
			conditions.MarkReconciling(a, meta.SuspendedReason, msg)
		}
		return ctrl.Result{RequeueAfter: r.resyncFor(a)}, nil
	}
	timeout := helm.DefaultTimeout
	if a.Spec.Timeout != nil && a.Spec.Timeout.Duration > 0 {
		timeout = a.Spec.Timeout.Duration
	}
	// An upgrade, its tests and a remediation each get the action timeout.
	ctx, cancel := context.WithTimeout(ctx, 4*timeout)
	defer cancel()

	files, err := r.fetcher.Fetch(ctx, a)
	if err != nil {
		if fetch.IsVerificationError(err) {
			r.stall(a, meta.VerificationFailedReason, fmt.Sprintf("revision %s not released: %v", rev, err))
			return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
		}
		r.fail(a, meta.ArtifactFailedReason, fmt.Sprintf("revision %s: %v", rev, err))
		return ctrl.Result{}, err
	}
	user := serviceAccountUser(a)
	ns := releaseNamespace(a)
	var vars map[string]string
	if pb := a.Spec.PostBuild; pb != nil {
		c, err := r.spoke.clientFor(user)
		if err != nil {
			r.fail(a, meta.ApplyFailedReason, fmt.Sprintf("spoke client for %s: %v", user, err))
			return ctrl.Result{}, err
		}
		if vars, err = postbuild.Variables(ctx, c, ns, pb); err != nil {
			r.fail(a, helm.ChartFailedReason, fmt.Sprintf("revision %s not released, the release is left as it runs: postBuild: %v", rev, err))
			return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
		}
	}
	res, err := r.helm.Reconcile(ctx, helm.Request{
		Settings: a.Spec.Helm, Digest: art.Digest, Revision: rev, Files: files, Vars: vars,
		Namespace: ns, User: user, Timeout: timeout, Previous: a.Status.Release,
		DriftCheck: resync, FieldManager: FieldManager(a),
	})
	if err != nil {
		r.fail(a, helm.StorageFailedReason, fmt.Sprintf("release of revision %s: %v", rev, err))
		return ctrl.Result{}, err
	}
	st := res.Release
	a.Status.Release = &st
	a.Status.Inventory = int32(res.Objects)
	a.Status.Entries = nil // Helm's manifest is the inventory, the record lists nothing
	if res.Deployed {
		a.Status.AppliedDigest = art.Digest
		a.Status.AppliedRevision = art.Revision
	}
	if res.Checked {
		r.reportHelmDrift(a, res)
	}
	switch {
	case res.Ready:
		a.Status.ObservedGeneration = a.Generation
		a.Status.Message = res.Message
		conditions.MarkReady(a, meta.SucceededReason, res.Message)
		if res.Acted {
			// Ready says it; a success records no Event (see sync).
			log.Info(res.Message, "revision", rev, "digest", art.Digest)
		}
		now := time.Now()
		if !rec.matches(a) || resync || rec.at.IsZero() {
			rec = appliedRecord{uid: a.UID, generation: a.Generation, digest: art.Digest,
				requestedAt: a.Annotations[meta.ReconcileRequestedAtAnnotation], at: now}
		}
		rec.message, rec.healthy, rec.healthSince = res.Message, true, now
		r.store(a, rec)
		if err := r.state.save(ctx, a, a.Spec, nil); err != nil {
			log.Error(err, "recording the applied state on the spoke")
		}
		return ctrl.Result{RequeueAfter: max(time.Until(rec.at.Add(r.resync)), time.Second)}, nil
	case res.Stalled:
		a.Status.ObservedGeneration = a.Generation
		r.stall(a, res.Reason, res.Message)
		r.forget(client.ObjectKeyFromObject(a))
		return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
	case res.Reason == meta.ProgressingReason:
		conditions.MarkReconciling(a, res.Reason, res.Message)
		a.Status.Message = res.Message
		return ctrl.Result{RequeueAfter: r.poll}, nil
	default:
		a.Status.ObservedGeneration = a.Generation
		r.fail(a, res.Reason, res.Message)
		r.forget(client.ObjectKeyFromObject(a))
		return ctrl.Result{RequeueAfter: r.poll}, nil
	}
}

// reportHelmDrift records what a release's drift check found, as reportDrift does
// for manifests.
func (r *reconciler) reportHelmDrift(a *fleetv1.Assignment, res *helm.Result) {
	if len(res.Drifted) == 0 {
		if conditions.Get(a, meta.DriftedCondition) != nil {
			conditions.Set(a, meta.DriftedCondition, metav1.ConditionFalse, meta.NoDriftReason, "the spoke matches the release")
		}
		return
	}
	reason, verb := meta.DriftCorrectedReason, "corrected"
	if res.WarnOnly {
		reason, verb = meta.DriftDetectedReason, "left as found (drift detection mode warn)"
	}
	last := res.Drifted[len(res.Drifted)-1]
	observeDrift(len(res.Drifted), res.WarnOnly)
	msg := fmt.Sprintf("%s (%s)", last.Object, last.Fields)
	if len(res.Drifted) > 1 {
		msg = fmt.Sprintf("%d objects drifted, the last %s", len(res.Drifted), msg)
	}
	msg += " " + verb
	now := metav1.Now()
	d := a.Status.Drift
	if d == nil {
		d = &fleetv1.DriftStatus{}
	}
	d.Corrections += int64(len(res.Drifted))
	d.LastObject, d.LastTime = last.Object, &now
	a.Status.Drift = d
	conditions.Set(a, meta.DriftedCondition, metav1.ConditionTrue, reason, msg)
	r.event(a, corev1.EventTypeWarning, reason, "DriftCheck", msg)
}

// releaseHelm uninstalls a released Assignment's Helm release, unless its deletion
// policy is Orphan, and returns the Released message.
func (r *reconciler) releaseHelm(ctx context.Context, a *fleetv1.Assignment) (string, error) {
	if a.Spec.DeletionPolicy == meta.DeletionPolicyOrphan {
		return fmt.Sprintf("orphaned release %s (deletion policy Orphan)", a.Spec.Helm.ReleaseName), nil
	}
	ns := releaseNamespace(a)
	timeout := helm.DefaultTimeout
	if a.Spec.Timeout != nil && a.Spec.Timeout.Duration > 0 {
		timeout = a.Spec.Timeout.Duration
	}
	return r.helm.Uninstall(ctx, helm.Request{Settings: a.Spec.Helm, Namespace: ns, User: serviceAccountUser(a), Timeout: timeout})
}

// releaseNamespace is a Helm release's namespace: the target namespace, else default.
func releaseNamespace(a *fleetv1.Assignment) string {
	if a.Spec.TargetNamespace != "" {
		return a.Spec.TargetNamespace
	}
	return "default"
}
