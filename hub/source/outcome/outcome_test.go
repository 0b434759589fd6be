package outcome

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

func TestNextArtifact(t *testing.T) {
	then := metav1.NewTime(time.Unix(100, 0))
	now := metav1.NewTime(time.Unix(200, 0))
	size := int64(7)
	prev := &meta.Artifact{URL: "http://old/x", Revision: "r1", Digest: "d1", LastUpdateTime: then}

	same, isNew := NextArtifact(prev, meta.Artifact{URL: "https://new/x", Revision: "r1", Digest: "d1", Size: &size}, now)
	if isNew || !same.LastUpdateTime.Equal(&then) || same.URL != "https://new/x" || *same.Size != 7 {
		t.Fatalf("unchanged fetch: new=%v %+v", isNew, same)
	}
	next, isNew := NextArtifact(prev, meta.Artifact{URL: "https://new/x", Revision: "r2", Digest: "d2", Size: &size}, now)
	if !isNew || !next.LastUpdateTime.Equal(&now) || next.Revision != "r2" {
		t.Fatalf("new revision: new=%v %+v", isNew, next)
	}
	if first, isNew := NextArtifact(nil, meta.Artifact{Revision: "r1", Digest: "d1"}, now); !isNew || first.Revision != "r1" {
		t.Fatalf("first fetch: new=%v %+v", isNew, first)
	}
}

func TestMarkArtifactInStorage(t *testing.T) {
	obj := &sourcev1.OCIRepository{}
	art := &meta.Artifact{Revision: "v1@sha256:abc"}
	for _, tc := range []struct {
		art    *meta.Artifact
		stored bool
		status metav1.ConditionStatus
		msg    string
	}{
		{nil, false, metav1.ConditionFalse, "no index has been stored yet"},
		{art, false, metav1.ConditionFalse, "index for revision v1@sha256:abc is missing from storage"},
		{art, true, metav1.ConditionTrue, "stored index for revision v1@sha256:abc"},
	} {
		MarkArtifactInStorage(obj, tc.art, tc.stored, "index")
		c := conditions.Get(obj, meta.ArtifactInStorageCondition)
		if c == nil || c.Status != tc.status || c.Message != tc.msg {
			t.Errorf("got %+v, want %s %q", c, tc.status, tc.msg)
		}
	}
}
