package agent

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/conditions"
	"github.com/flotilla-dev/flotilla/spoke/apply"
)

// appliedRecord remembers, in memory only, when the agent last applied an
// Assignment successfully. A restarted agent re-applies everything once, which is
// what an agent coming back should do anyway.
type appliedRecord struct {
	uid         types.UID
	at          time.Time
	requestedAt string // the reconcile-requested-at annotation that apply answered
}

// resyncWait tells how long an Assignment may be left alone: it is when the spoke
// runs its current artifact, the status says so for its current generation, no new
// reconcile was asked for, and the last apply is younger than the resync interval.
func resyncWait(a *fleetv1.Assignment, last appliedRecord, now time.Time, resync time.Duration) (time.Duration, bool) {
	ready := conditions.Get(a, meta.ReadyCondition)
	switch {
	case last.uid != a.UID || last.at.IsZero():
		return 0, false
	case a.Status.AppliedDigest != a.Spec.Artifact.Digest:
		return 0, false
	case a.Status.ObservedGeneration != a.Generation:
		return 0, false
	case ready == nil || ready.Status != "True" || ready.ObservedGeneration != a.Generation:
		return 0, false
	case last.requestedAt != a.Annotations[meta.ReconcileRequestedAtAnnotation]:
		return 0, false
	}
	left := resync - now.Sub(last.at)
	if left <= 0 {
		return 0, false
	}
	return left, true
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
	return previousDigest != digest || pruned > 0 || res.Count(apply.Created)+res.Count(apply.Configured) > 0
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
