package reconcile

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

func TestNextArtifact(t *testing.T) {
	t.Parallel()
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	size := int64(10)
	prev := &meta.Artifact{URL: "http://old/a", Revision: "main@sha1:1", Digest: "sha256:a", Size: &size, LastUpdateTime: t0}
	for _, tc := range []struct {
		name  string
		prev  *meta.Artifact
		a     meta.Artifact
		want  *meta.Artifact
		isNew bool
	}{
		{"first", nil, meta.Artifact{Revision: "main@sha1:1", Digest: "sha256:a", Size: &size, URL: "http://hub/a"},
			&meta.Artifact{URL: "http://hub/a", Revision: "main@sha1:1", Digest: "sha256:a", Size: &size, LastUpdateTime: t1}, true},
		{"unchanged keeps time, refreshes URL", prev, meta.Artifact{Revision: "main@sha1:1", Digest: "sha256:a", Size: &size, URL: "http://hub/a"},
			&meta.Artifact{URL: "http://hub/a", Revision: "main@sha1:1", Digest: "sha256:a", Size: &size, LastUpdateTime: t0}, false},
		{"new revision", prev, meta.Artifact{Revision: "main@sha1:2", Digest: "sha256:a", Size: &size, URL: "http://old/a"},
			&meta.Artifact{URL: "http://old/a", Revision: "main@sha1:2", Digest: "sha256:a", Size: &size, LastUpdateTime: t1}, true},
		{"new content", prev, meta.Artifact{Revision: "main@sha1:1", Digest: "sha256:b", Size: &size, URL: "http://old/b"},
			&meta.Artifact{URL: "http://old/b", Revision: "main@sha1:1", Digest: "sha256:b", Size: &size, LastUpdateTime: t1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, isNew := nextArtifact(tc.prev, tc.a, t1)
			if isNew != tc.isNew {
				t.Errorf("isNew %v", isNew)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Error(diff)
			}
		})
	}
	if prev.URL != "http://old/a" {
		t.Fatal("nextArtifact changed its input")
	}
}

func TestMarkArtifactInStorage(t *testing.T) {
	t.Parallel()
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
		setArtifactInStorage(obj, tc.art, tc.stored, "index")
		c := conditions.Get(obj, meta.ArtifactInStorageCondition)
		if c == nil || c.Status != tc.status || c.Message != tc.msg {
			t.Errorf("got %+v, want %s %q", c, tc.status, tc.msg)
		}
	}
}

func TestReconcileRequestedPredicate(t *testing.T) {
	t.Parallel()
	obj := func(v string) *sourcev1.GitRepository {
		o := &sourcev1.GitRepository{}
		if v != "" {
			o.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: v}
		}
		return o
	}
	p := ReconcileRequestedPredicate{}
	for _, tc := range []struct {
		old, new string
		want     bool
	}{
		{"", "", false}, {"", "1", true}, {"1", "1", false}, {"1", "2", true}, {"1", "", false},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: obj(tc.old), ObjectNew: obj(tc.new)}); got != tc.want {
			t.Errorf("%q -> %q: %v", tc.old, tc.new, got)
		}
	}
}

func TestArtifactChangedPredicate(t *testing.T) {
	t.Parallel()
	repo := func(a *meta.Artifact, generation int64) *sourcev1.GitRepository {
		r := &sourcev1.GitRepository{}
		r.Generation = generation
		r.Status.Artifact = a
		return r
	}
	a1 := &meta.Artifact{Revision: "main@sha1:1", Digest: "sha256:a"}
	a1moved := &meta.Artifact{Revision: "main@sha1:1", Digest: "sha256:a", URL: "http://elsewhere"}
	a2 := &meta.Artifact{Revision: "main@sha1:2", Digest: "sha256:b"}
	sameRevNewDigest := &meta.Artifact{Revision: "main@sha1:1", Digest: "sha256:c"}
	p := ArtifactChangedPredicate{}
	for _, tc := range []struct {
		name     string
		old, new *sourcev1.GitRepository
		want     bool
	}{
		{"first artifact", repo(nil, 1), repo(a1, 1), true},
		{"new revision", repo(a1, 1), repo(a2, 1), true},
		{"new content, same revision", repo(a1, 1), repo(sameRevNewDigest, 1), true},
		{"same artifact, URL refreshed", repo(a1, 1), repo(a1moved, 1), false},
		{"spec change only", repo(a1, 1), repo(a1, 2), false},
		{"artifact gone", repo(a1, 1), repo(nil, 1), false},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: Update = %v, want %v", tc.name, got, tc.want)
		}
	}
	if p.Delete(event.DeleteEvent{Object: repo(a1, 1)}) {
		t.Error("Delete passes")
	}
}
