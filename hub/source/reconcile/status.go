package reconcile

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// nextArtifact returns the artifact to record and whether it is new. Only a new
// revision or new content is new; an unchanged fetch keeps prev's update time, with
// the URL and size refreshed (the hub's address may have moved).
func nextArtifact(prev *meta.Artifact, a meta.Artifact, now metav1.Time) (*meta.Artifact, bool) {
	if prev != nil && prev.Revision == a.Revision && prev.Digest == a.Digest {
		out := prev.DeepCopy()
		out.URL = a.URL
		if a.Size != nil {
			out.Size = a.Size
		}
		return out, false
	}
	out := a.DeepCopy()
	out.LastUpdateTime = now
	return out, true
}

// readyMessage is the Ready condition's message after a successful fetch.
func readyMessage(revision string) string {
	return "stored artifact for revision " + revision
}

// setArtifactInStorage says whether art, the artifact in obj's status, can be
// downloaded; noun names it for people ("artifact", "index").
func setArtifactInStorage(obj conditions.Object, art *meta.Artifact, stored bool, noun string) {
	switch {
	case art == nil:
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionFalse, meta.ArtifactNotReadyReason, "no "+noun+" has been stored yet")
	case !stored:
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionFalse, meta.StorageOperationFailedReason,
			noun+" for revision "+art.Revision+" is missing from storage")
	default:
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionTrue, meta.SucceededReason,
			"stored "+noun+" for revision "+art.Revision)
	}
}

// ReconcileRequestedPredicate passes updates that change the
// flotilla.dev/reconcile-requested-at annotation.
type ReconcileRequestedPredicate struct {
	predicate.Funcs
}

// Update passes when the annotation's value changed to a non-empty one.
func (ReconcileRequestedPredicate) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	v := e.ObjectNew.GetAnnotations()[meta.ReconcileRequestedAtAnnotation]
	return v != "" && v != e.ObjectOld.GetAnnotations()[meta.ReconcileRequestedAtAnnotation]
}

// ArtifactChangedPredicate passes updates that change a source's stored artifact
// (revision or digest), and nothing else: what a source that uses another's artifact
// needs to hear about.
type ArtifactChangedPredicate struct {
	predicate.Funcs
}

// Create passes: a source already holding an artifact when the cache starts.
func (ArtifactChangedPredicate) Create(event.CreateEvent) bool { return true }

// Delete passes nothing: users of the artifact keep the last one they built.
func (ArtifactChangedPredicate) Delete(event.DeleteEvent) bool { return false }

// Generic passes nothing.
func (ArtifactChangedPredicate) Generic(event.GenericEvent) bool { return false }

// Update passes when the artifact's revision or digest changed.
func (ArtifactChangedPredicate) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	before, after := artifactOf(e.ObjectOld), artifactOf(e.ObjectNew)
	switch {
	case after == nil:
		return false
	case before == nil:
		return true
	}
	return before.Digest != after.Digest || before.Revision != after.Revision
}

func artifactOf(o any) *meta.Artifact {
	if s, ok := o.(interface{ GetArtifact() *meta.Artifact }); ok {
		return s.GetArtifact()
	}
	return nil
}
