package helm

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/conditions"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// nextArtifact returns the artifact to record and whether it is new: an unchanged
// index keeps its update time.
func nextArtifact(prev *meta.Artifact, a meta.Artifact, now metav1.Time) (*meta.Artifact, bool) {
	if prev != nil && prev.Revision == a.Revision && prev.Digest == a.Digest {
		out := prev.DeepCopy()
		out.URL = a.URL
		out.Size = a.Size
		return out, false
	}
	out := a.DeepCopy()
	out.LastUpdateTime = now
	return out, true
}

// markArtifactInStorage says whether the index in status can be downloaded; an OCI
// repository has none and no such condition.
func markArtifactInStorage(obj *sourcev1.HelmRepository, store *storage.Store) {
	switch {
	case obj.Spec.Type == TypeOCI:
		conditions.Remove(obj, meta.ArtifactInStorageCondition)
	case obj.Status.Artifact == nil:
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionFalse, meta.ArtifactNotReadyReason, "no index has been stored yet")
	case !store.Has(obj.Status.Artifact.Digest):
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionFalse, meta.StorageOperationFailedReason,
			"index revision "+obj.Status.Artifact.Revision+" is missing from storage")
	default:
		conditions.Set(obj, meta.ArtifactInStorageCondition, metav1.ConditionTrue, meta.SucceededReason,
			"stored index revision "+obj.Status.Artifact.Revision)
	}
}
