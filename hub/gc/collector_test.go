package gc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/gc"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/registry"
)

// put stores content and backdates it past the grace period.
func put(t *testing.T, s *storage.Store, content string) string {
	t.Helper()
	d, err := s.Put([]byte(content))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	p := filepath.Join(s.Dir(), "sha256", strings.TrimPrefix(d, "sha256:")+".tar.gz")
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return d
}

func art(s *storage.Store, d string) *meta.Artifact {
	return &meta.Artifact{URL: s.URL(d), Revision: "main@sha1:" + strings.Repeat("0", 40), Digest: d, LastUpdateTime: metav1.Now()}
}

func setGitArtifact(t *testing.T, c client.Client, repo *sourcev1.GitRepository, a *meta.Artifact) {
	t.Helper()
	repo.Status.Artifact = a
	if err := c.Status().Update(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorOnARealAPIServer keeps what is referenced, assigned or among the last
// revisions of a live owner, and deletes the rest from disk.
func TestCollectorOnARealAPIServer(t *testing.T) {
	ctx := context.Background()
	cp := env.StartControlPlane(t, "gc", true)
	c := cp.Client()
	store, err := storage.New(t.TempDir(), "http://hub")
	if err != nil {
		t.Fatal(err)
	}
	col := &gc.Collector{Client: c, Store: store, Revisions: 2, GracePeriod: time.Minute}

	repo := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
		Spec: sourcev1.GitRepositorySpec{URL: "https://example.com/app.git", Interval: metav1.Duration{Duration: time.Minute}}}
	if err := c.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	ks := &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
		Spec: deliveryv1.KustomizationSpec{SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Interval: metav1.Duration{Duration: time.Minute}}}
	if err := c.Create(ctx, ks); err != nil {
		t.Fatal(err)
	}

	// Three source revisions, one after another, each seen by a collection.
	var src []string
	for i := 1; i <= 3; i++ {
		d := put(t, store, fmt.Sprintf("src-%d", i))
		src = append(src, d)
		setGitArtifact(t, c, repo, art(store, d))
		res, err := col.Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Revisions=2: the third revision pushes the first out.
		if i == 3 && (len(res.Deleted) != 1 || res.Deleted[0] != src[0]) {
			t.Fatalf("after the third revision, deleted %v, want the first %s", res.Deleted, src[0])
		}
	}
	built := put(t, store, "built-1")
	ks.Status.Artifact = art(store, built)
	if err := c.Status().Update(ctx, ks); err != nil {
		t.Fatal(err)
	}
	// An artifact only an Assignment still names (e.g. a paused cluster's).
	pinned := put(t, store, "pinned")
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "flotilla-cluster-x"}}); err != nil {
		t.Fatal(err)
	}
	a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: "flotilla-cluster-x", Name: "pinned"},
		Spec: fleetv1.AssignmentSpec{
			Owner: fleetv1.DeploymentReference{APIVersion: deliveryv1.GroupVersion.String(), Kind: deliveryv1.KustomizationKind,
				Namespace: "default", Name: "other", UID: "x"},
			Artifact: fleetv1.SignedArtifact{URL: store.URL(pinned), Digest: pinned, Signature: "c2ln"},
		}}
	if err := c.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	orphan := put(t, store, "orphan")
	fresh, _ := store.Put([]byte("just stored")) // within the grace period

	res, err := col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{orphan}
	sort.Strings(want)
	if diff := cmp.Diff(want, res.Deleted); diff != "" {
		t.Fatalf("deleted (-want +got):\n%s", diff)
	}
	for _, d := range []string{src[1], src[2], built, pinned, fresh} {
		if !store.Has(d) {
			t.Errorf("%s was deleted", d)
		}
	}
	for _, d := range append(want, src[0]) {
		if store.Has(d) {
			t.Errorf("%s is still on disk", d)
		}
	}

	// Once the Assignment is gone, its artifact goes too; once the Kustomization is
	// gone, so does its history.
	if err := c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, ks); err != nil {
		t.Fatal(err)
	}
	res, err = col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{built, pinned}
	sort.Strings(want)
	if diff := cmp.Diff(want, res.Deleted); diff != "" {
		t.Fatalf("second collection deleted (-want +got):\n%s", diff)
	}
}

// TestCollectorWithOCIStore collects from a registry as from disk: what a status
// names stays, the rest goes, and the history lives in the registry.
func TestCollectorWithOCIStore(t *testing.T) {
	ctx := context.Background()
	cp := env.StartControlPlane(t, "gc-oci", true)
	c := cp.Client()
	reg := registry.New(t)
	store, err := storage.NewOCI(reg.URL("flotilla/artifacts"), "https://hub", storage.OCIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := store.Put([]byte("kept"))
	gone, _ := store.Put([]byte("gone"))
	repo := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "oci-app"},
		Spec: sourcev1.GitRepositorySpec{URL: "https://example.com/app.git", Interval: metav1.Duration{Duration: time.Minute}}}
	if err := c.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	repo.Status.Artifact = &meta.Artifact{URL: store.URL(kept), Revision: "main@sha1:" + strings.Repeat("0", 40), Digest: kept, LastUpdateTime: metav1.Now()}
	if err := c.Status().Update(ctx, repo); err != nil {
		t.Fatal(err)
	}
	// Every artifact is past a grace period of a nanosecond.
	col := &gc.Collector{Client: c, Store: store, GracePeriod: time.Nanosecond}
	res, err := col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 1 || res.Deleted[0] != gone {
		t.Fatalf("deleted %v, want only %s", res.Deleted, gone)
	}
	if !store.Has(kept) || store.Has(gone) {
		t.Fatalf("after collection: kept there %v, gone there %v", store.Has(kept), store.Has(gone))
	}
	hist, err := store.LoadHistory()
	if err != nil || len(hist["GitRepository/default/oci-app"]) != 1 {
		t.Fatalf("history in the registry: %v, %v", hist, err)
	}
}
