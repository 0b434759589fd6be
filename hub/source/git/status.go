package git

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
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

// nextArtifact applies outcome.NextArtifact to what a fetch produced.
func nextArtifact(prev *meta.Artifact, f fetched, now metav1.Time) (*meta.Artifact, bool) {
	size := f.Size
	return outcome.NextArtifact(prev, meta.Artifact{URL: f.URL, Revision: f.Revision, Digest: f.Digest, Size: &size}, now)
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
