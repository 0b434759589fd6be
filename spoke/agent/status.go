package agent

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/apply"
)

// appliedRecord remembers, in memory only, what the agent last applied for an
// Assignment and how its health check is going. A restarted agent re-applies
// everything once (as a drift check when the spoke already runs the revision).
type appliedRecord struct {
	uid         types.UID
	generation  int64
	digest      string
	requestedAt string // the reconcile-requested-at annotation that apply answered
	at          time.Time
	refs        []apply.ObjectRef // what was applied, for the health check
	message     string            // the apply's summary, the Ready message once healthy
	healthSince time.Time         // start of the current wait for health
	healthy     bool
}

// matches reports whether rec is the record of a's current spec.
func (rec appliedRecord) matches(a *fleetv1.Assignment) bool {
	return !rec.at.IsZero() && rec.uid == a.UID && rec.generation == a.Generation &&
		rec.digest == a.Spec.Artifact.Digest && rec.requestedAt == a.Annotations[meta.ReconcileRequestedAtAnnotation]
}

// step is what a reconcile of an Assignment does.
type step int

const (
	// stepApply applies the artifact: it is new to this agent, or the status lost it.
	stepApply step = iota
	// stepResync checks the spoke for drift (and corrects it) and then health.
	stepResync
	// stepHealth only checks health: the apply is recent, its objects are not healthy yet.
	stepHealth
	// stepIdle does nothing until the returned wait is over.
	stepIdle
)

// nextStep decides a reconcile's work from the Assignment and the agent's record
// of it; the wait is meaningful for stepIdle only.
func nextStep(a *fleetv1.Assignment, rec appliedRecord, now time.Time, resync time.Duration) (step, time.Duration) {
	switch {
	case !rec.matches(a):
		return stepApply, 0
	case a.Status.AppliedDigest != a.Spec.Artifact.Digest || a.Status.ObservedGeneration != a.Generation:
		return stepApply, 0
	}
	left := resync - now.Sub(rec.at)
	switch {
	case left <= 0:
		return stepResync, 0
	case !rec.healthy:
		return stepHealth, 0
	}
	return stepIdle, left
}

// healthRefs lists what must be healthy before Ready: what was applied when
// spec.wait, then spec.healthChecks.
func healthRefs(a *fleetv1.Assignment, applied []apply.ObjectRef) []apply.ObjectRef {
	var out []apply.ObjectRef
	if a.Spec.Wait {
		out = append(out, applied...)
	}
	for _, hc := range a.Spec.HealthChecks {
		gv, _ := schema.ParseGroupVersion(hc.APIVersion)
		out = append(out, apply.ObjectRef{Group: gv.Group, Version: gv.Version, Kind: hc.Kind, Namespace: hc.Namespace, Name: hc.Name})
	}
	return out
}

// applyTimeout bounds one fetch-and-apply: spec.timeout, as in Flux, or 5 minutes.
func applyTimeout(a *fleetv1.Assignment) time.Duration {
	if a.Spec.Timeout != nil && a.Spec.Timeout.Duration > 0 {
		return a.Spec.Timeout.Duration
	}
	return defaultApplyTimeout
}

// MinInterval is the shortest spec.interval the agent honours for full re-checks.
const MinInterval = 10 * time.Second

// resyncInterval is how often a's whole spoke state is checked again: the agent's
// resync, or spec.interval when shorter (but not under MinInterval).
func resyncInterval(a *fleetv1.Assignment, resync time.Duration) time.Duration {
	if a.Spec.Interval == nil || a.Spec.Interval.Duration <= 0 || a.Spec.Interval.Duration >= resync {
		return resync
	}
	return min(max(a.Spec.Interval.Duration, MinInterval), resync)
}

// retryDelay is how soon the n-th consecutive failed sync of a is retried:
// spec.retryInterval when set, else 100 ms doubling with each failure, at most
// interval.
func retryDelay(a *fleetv1.Assignment, n int, interval time.Duration) time.Duration {
	if a.Spec.RetryInterval != nil && a.Spec.RetryInterval.Duration > 0 {
		return a.Spec.RetryInterval.Duration
	}
	d := 100 * time.Millisecond
	for i := 1; i < n && d < interval; i++ {
		d *= 2
	}
	return min(d, interval)
}

func healthTimeout(a *fleetv1.Assignment) time.Duration {
	if a.Spec.Timeout != nil && a.Spec.Timeout.Duration > 0 {
		return a.Spec.Timeout.Duration
	}
	return defaultHealthTimeout
}

// driftMode is spec.driftDetection.mode, Correct when unset.
func driftMode(a *fleetv1.Assignment) string {
	if a.Spec.DriftDetection == nil || a.Spec.DriftDetection.Mode == "" {
		return meta.DriftCorrect
	}
	return a.Spec.DriftDetection.Mode
}

// deletesOnRelease tells whether a deleted Assignment's objects are deleted (true)
// or orphaned, as spec.deletionPolicy says; MirrorPrune, the default, follows prune.
func deletesOnRelease(a *fleetv1.Assignment) bool {
	switch a.Spec.DeletionPolicy {
	case meta.DeletionPolicyDelete:
		return true
	case meta.DeletionPolicyOrphan:
		return false
	default:
		return a.Spec.Prune
	}
}

// notReady says why a dependency is not ready on its current artifact, or "".
func notReady(dep *fleetv1.Assignment) string {
	ready := conditions.Get(dep, meta.ReadyCondition)
	switch {
	case !dep.DeletionTimestamp.IsZero():
		return "it is being deleted"
	case dep.Status.AppliedDigest != dep.Spec.Artifact.Digest:
		return "its current artifact is not applied yet"
	case ready == nil:
		return "it has not reported yet"
	case ready.ObservedGeneration != dep.Generation:
		return "it has not reported on its current generation yet"
	case ready.Status != metav1.ConditionTrue:
		return "it is not Ready: " + ready.Message
	}
	return ""
}

// driftMessage names the drifted objects, the last one with what differed, e.g.
// "ConfigMap/demo/settings (.data.value) corrected".
func driftMessage(drifted []apply.Change, verb string) string {
	last := drifted[len(drifted)-1]
	msg := fmt.Sprintf("%s (%s)", last.Ref, last.Drift)
	if len(drifted) > 1 {
		msg = fmt.Sprintf("%d objects drifted, the last %s", len(drifted), msg)
	}
	return msg + " " + verb
}

// revisionOf names an artifact for people: its revision, or its digest when it has none.
func revisionOf(a fleetv1.SignedArtifact) string {
	if a.Revision != "" {
		return a.Revision
	}
	return a.Digest
}

// appliedMessage is the Ready message of a successful apply, e.g.
// "applied revision main@sha1:…: 3 objects (1 created, 2 unchanged), 1 pruned".
func appliedMessage(revision string, res *apply.Result, pruned int) string {
	msg := fmt.Sprintf("applied revision %s: %s", revision, res.Summary())
	if pruned > 0 {
		msg += fmt.Sprintf(", %d pruned", pruned)
	}
	return msg
}

// releasedMessage is the Released message once a deleted Assignment's objects are
// dealt with.
func releasedMessage(prune bool, res *apply.DeleteResult, entries int) string {
	if !prune {
		return fmt.Sprintf("orphaned %s", objects(entries))
	}
	msg := fmt.Sprintf("pruned %s", objects(len(res.Deleted)))
	if n := len(res.Kept); n > 0 {
		msg += fmt.Sprintf(", kept %d not owned by this Assignment or protected", n)
	}
	return msg
}

func objects(n int) string {
	if n == 1 {
		return "1 object"
	}
	return fmt.Sprintf("%d objects", n)
}

// changed reports whether an apply did anything worth an Event.
func changed(previousDigest, digest string, res *apply.Result, pruned int) bool {
	return previousDigest != digest || pruned > 0 || res.Count(apply.Created)+res.Count(apply.Configured)+res.Count(apply.Replaced) > 0
}

// specOrRequestChanged lets through what asks the agent to act: a new generation,
// the start of deletion, or a new reconcile-requested-at. The agent's own status
// writes change none of these, so they do not wake it up again.
type specOrRequestChanged struct {
	predicate.Funcs
}

func (specOrRequestChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return true
	}
	o, n := e.ObjectOld, e.ObjectNew
	return o.GetGeneration() != n.GetGeneration() ||
		o.GetDeletionTimestamp().IsZero() != n.GetDeletionTimestamp().IsZero() ||
		o.GetAnnotations()[meta.ReconcileRequestedAtAnnotation] != n.GetAnnotations()[meta.ReconcileRequestedAtAnnotation] ||
		len(o.GetFinalizers()) != len(n.GetFinalizers())
}
