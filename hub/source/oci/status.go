package oci

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/conditions"
)

// nextArtifact returns the artifact to record and whether it is new: only a new
// revision or new content is, and an unchanged pull keeps its update time.
func nextArtifact(prev *meta.Artifact, a meta.Artifact, now metav1.Time) (*meta.Artifact, bool) {
	if prev != nil && prev.Revision == a.Revision && prev.Digest == a.Digest {
		out := prev.DeepCopy()
		out.URL = a.URL // the hub's address may have moved
		out.Size = a.Size
		return out, false
	}
	out := a.DeepCopy()
	out.LastUpdateTime = now
	return out, true
}

func readyMessage(revision string) string {
	return "stored artifact for revision " + revision
}

// markArtifactInStorage says whether the artifact in status can be downloaded.
func markArtifactInStorage(obj *sourcev1.OCIRepository, stored bool) {
	switch {
	case obj.Status.Artifact == nil:
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionFalse, meta.ArtifactNotReadyReason, "no artifact has been stored yet")
	case !stored:
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionFalse, meta.StorageOperationFailedReason,
			"artifact for revision "+obj.Status.Artifact.Revision+" is missing from storage")
	default:
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionTrue, meta.SucceededReason, readyMessage(obj.Status.Artifact.Revision))
	}
}
