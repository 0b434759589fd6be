package git

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/conditions"
)

// fetched is what one successful fetch produced.
type fetched struct {
	Revision string
	Digest   string
	Size     int64
	URL      string
	// VerifiedBy names the OpenPGP key that signed the revision; empty without spec.verify.
	VerifiedBy string
}

// nextArtifact returns the artifact to record and whether it is new. Only a new
// revision or new content is new; an unchanged fetch keeps prev and its update time,
// with the URL refreshed in case the hub's address moved.
func nextArtifact(prev *meta.Artifact, f fetched, now metav1.Time) (*meta.Artifact, bool) {
	if prev != nil && prev.Revision == f.Revision && prev.Digest == f.Digest {
		a := prev.DeepCopy()
		a.URL = f.URL
		if a.Size == nil {
			size := f.Size
			a.Size = &size
		}
		return a, false
	}
	size := f.Size
	return &meta.Artifact{URL: f.URL, Revision: f.Revision, Digest: f.Digest, Size: &size, LastUpdateTime: now}, true
}

// readyMessage is the Ready condition's message after a successful fetch.
func readyMessage(revision string) string {
	return "stored artifact for revision " + revision
}

// markArtifactInStorage says whether the artifact in status can be downloaded.
func markArtifactInStorage(obj *sourcev1.GitRepository, stored bool) {
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

// markVerified records the signature check of a successful fetch; without
// spec.verify there is nothing to say, so the condition goes.
func markVerified(obj *sourcev1.GitRepository, f fetched) {
	if obj.Spec.Verify == nil {
		conditions.Remove(obj, meta.SourceVerifiedCondition)
		return
	}
	what := "commit"
	if obj.Spec.Verify.Mode == VerifyTag {
		what = "tag"
	}
	conditions.Set(obj, meta.SourceVerifiedCondition, metav1.ConditionTrue, meta.SucceededReason,
		fmt.Sprintf("%s of revision %s is signed by %s", what, f.Revision, f.VerifiedBy))
}
