package git_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/git"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// controlPlane finds kube-apiserver and etcd as hack/control-plane.sh leaves them.
func controlPlane(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FLOTILLA_CONTROL_PLANE")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", ".cache", "control-plane", "current")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			t.Fatalf("no %s in %s: run `make control-plane` (or set FLOTILLA_CONTROL_PLANE): %v", bin, dir, err)
		}
	}
	return dir
}

type hub struct {
	c     client.Client
	store *storage.Store
}

// startHub runs a real API server with the CRDs and a manager with the GitRepository
// controller, its artifacts served over HTTP.
func startHub(t *testing.T) *hub {
	t.Helper()
	ctrl.SetLogger(zap.New(zap.WriteTo(testWriter{t}), zap.UseDevMode(true)))
	scheme := api.NewScheme()
	env := &envtest.Environment{
		BinaryAssetsDirectory: controlPlane(t),
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "..", "deploy", "crds")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stopping the API server: %v", err)
		}
	})

	store, err := storage.New(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	artifacts := httptest.NewServer(store.Handler())
	t.Cleanup(artifacts.Close)
	store.SetBaseURL(artifacts.URL)

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&git.Reconciler{Store: store}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &hub{c: c, store: store}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (h *hub) namespace(t *testing.T, name string) string {
	t.Helper()
	if err := h.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func (h *hub) secret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := h.c.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func (h *hub) get(t *testing.T, ns, name string) *sourcev1.GitRepository {
	t.Helper()
	obj := &sourcev1.GitRepository{}
	if err := h.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// update re-reads the object, changes it and writes it, retrying on conflicts.
func (h *hub) update(t *testing.T, ns, name string, change func(*sourcev1.GitRepository)) {
	t.Helper()
	for range 10 {
		obj := h.get(t, ns, name)
		change(obj)
		err := h.c.Update(context.Background(), obj)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "the object has been modified") {
			t.Fatal(err)
		}
	}
	t.Fatal("too many conflicts")
}

func (h *hub) requestReconcile(t *testing.T, ns, name string) string {
	t.Helper()
	v := time.Now().Format(time.RFC3339Nano)
	h.update(t, ns, name, func(o *sourcev1.GitRepository) {
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		o.Annotations[meta.ReconcileRequestedAtAnnotation] = v
	})
	return v
}

// waitFor polls the object until cond holds; cond explains what it is still missing.
func (h *hub) waitFor(t *testing.T, ns, name string, cond func(*sourcev1.GitRepository) error) *sourcev1.GitRepository {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		obj := h.get(t, ns, name)
		err := cond(obj)
		if err == nil {
			return obj
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: %v\nstatus: %+v", ns, name, err, obj.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readyWith(revision string) func(*sourcev1.GitRepository) error {
	return func(o *sourcev1.GitRepository) error {
		c := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("not Ready: %v", c)
		}
		if o.Status.Artifact == nil || o.Status.Artifact.Revision != revision {
			return fmt.Errorf("artifact %+v, want revision %s", o.Status.Artifact, revision)
		}
		return nil
	}
}

// download fetches the artifact over HTTP and checks its digest and size.
func download(t *testing.T, a *meta.Artifact) map[string]string {
	t.Helper()
	resp, err := http.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", a.URL, resp.Status)
	}
	if d := artifact.Digest(data); d != a.Digest {
		t.Fatalf("downloaded digest %s, status says %s", d, a.Digest)
	}
	if a.Size == nil || *a.Size != int64(len(data)) {
		t.Fatalf("size %v, downloaded %d bytes", a.Size, len(data))
	}
	files, err := artifact.Unpack(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range files {
		out[k] = string(v)
	}
	return out
}

func eventReasons(t *testing.T, h *hub, ns, name string) []string {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := h.c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			reasons = append(reasons, e.Type+"/"+e.Reason)
		}
	}
	sort.Strings(reasons)
	return reasons
}

func TestGitRepository(t *testing.T) {
	h := startHub(t)
	srv := gitserver.New(t, gitserver.WithBasicAuth("flotilla", "s3cret"))
	repo := srv.CreateRepo("fleet")
	first := repo.Write(map[string]string{
		"deploy/app.yaml":    "kind: ConfigMap\n",
		"deploy/db.secret":   "hush",
		"docs/readme.md":     "not for clusters",
		git.SourceIgnoreFile: "*.secret\n",
	})

	ns := h.namespace(t, "fetch")
	h.secret(t, ns, "creds", map[string]string{"username": "flotilla", "password": "s3cret"})
	obj := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"},
		Spec: sourcev1.GitRepositorySpec{
			URL: repo.URL(),
			// Long enough that only the annotation can cause the fetches below.
			Interval:  metav1.Duration{Duration: time.Hour},
			SecretRef: &meta.LocalObjectReference{Name: "creds"},
			Ignore:    ptr.To("docs/\n"),
		},
	}
	if err := h.c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}

	var firstArtifact meta.Artifact
	t.Run("stores the artifact", func(t *testing.T) {
		got := h.waitFor(t, ns, "fleet", readyWith("main@sha1:"+first))
		firstArtifact = *got.Status.Artifact
		files := download(t, got.Status.Artifact)
		want := map[string]string{"deploy/app.yaml": "kind: ConfigMap\n", git.SourceIgnoreFile: "*.secret\n"}
		if diff := cmp.Diff(want, files); diff != "" {
			t.Fatalf("artifact files (-want +got):\n%s", diff)
		}
		if !h.store.Has(got.Status.Artifact.Digest) {
			t.Fatal("artifact not in the store")
		}
		ready := apimeta.FindStatusCondition(got.Status.Conditions, meta.ReadyCondition)
		if ready.Reason != meta.SucceededReason || ready.Message != "stored artifact for revision main@sha1:"+first {
			t.Fatalf("Ready = %+v", ready)
		}
		if !apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.ArtifactInStorageCondition) {
			t.Fatalf("ArtifactInStorage not True: %+v", got.Status.Conditions)
		}
		if got.Status.ObservedGeneration != got.Generation {
			t.Fatalf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		h.waitFor(t, ns, "fleet", func(*sourcev1.GitRepository) error {
			if r := eventReasons(t, h, ns, "fleet"); !cmp.Equal(r, []string{"Normal/NewArtifact"}) {
				return fmt.Errorf("events %v", r)
			}
			return nil
		})
	})

	t.Run("unchanged fetch changes nothing", func(t *testing.T) {
		at := h.requestReconcile(t, ns, "fleet")
		got := h.waitFor(t, ns, "fleet", func(o *sourcev1.GitRepository) error {
			if o.Status.LastHandledReconcileAt != at {
				return fmt.Errorf("lastHandledReconcileAt %q, want %q", o.Status.LastHandledReconcileAt, at)
			}
			return nil
		})
		if diff := cmp.Diff(firstArtifact, *got.Status.Artifact); diff != "" {
			t.Fatalf("artifact changed:\n%s", diff)
		}
	})

	t.Run("new commit on request", func(t *testing.T) {
		second := repo.Write(map[string]string{"deploy/extra.yaml": "kind: Secret\n"})
		at := h.requestReconcile(t, ns, "fleet")
		got := h.waitFor(t, ns, "fleet", readyWith("main@sha1:"+second))
		if got.Status.LastHandledReconcileAt != at {
			t.Fatalf("lastHandledReconcileAt %q, want %q", got.Status.LastHandledReconcileAt, at)
		}
		if got.Status.Artifact.Digest == firstArtifact.Digest {
			t.Fatal("new content, same digest")
		}
		files := download(t, got.Status.Artifact)
		if files["deploy/extra.yaml"] != "kind: Secret\n" || len(files) != 3 {
			t.Fatalf("files %v", files)
		}
		if !h.store.Has(firstArtifact.Digest) {
			t.Fatal("the previous artifact went from the store while agents may still fetch it")
		}
	})

	t.Run("failure keeps the previous artifact", func(t *testing.T) {
		before := h.get(t, ns, "fleet")
		h.update(t, ns, "fleet", func(o *sourcev1.GitRepository) {
			o.Spec.Ref = &sourcev1.GitRepositoryRef{Branch: "missing"}
		})
		got := h.waitFor(t, ns, "fleet", func(o *sourcev1.GitRepository) error {
			c := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != meta.GitOperationFailedReason {
				return fmt.Errorf("Ready = %+v", c)
			}
			if !strings.Contains(c.Message, "refs/heads/missing") {
				return fmt.Errorf("message %q does not name the branch", c.Message)
			}
			return nil
		})
		if diff := cmp.Diff(before.Status.Artifact, got.Status.Artifact); diff != "" {
			t.Fatalf("artifact changed on failure:\n%s", diff)
		}
		if got.Status.ObservedGeneration == got.Generation {
			t.Fatal("observedGeneration moved on a failed reconcile")
		}
		if !apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.ArtifactInStorageCondition) {
			t.Fatal("the previous artifact is still stored, ArtifactInStorage should stay True")
		}
	})

	t.Run("suspended is left alone", func(t *testing.T) {
		h.update(t, ns, "fleet", func(o *sourcev1.GitRepository) {
			o.Spec.Ref = nil
			o.Spec.Suspend = true
		})
		before := h.get(t, ns, "fleet")
		at := h.requestReconcile(t, ns, "fleet")
		time.Sleep(time.Second)
		got := h.get(t, ns, "fleet")
		if got.Status.LastHandledReconcileAt == at {
			t.Fatal("a suspended object was reconciled")
		}
		if diff := cmp.Diff(before.Status, got.Status); diff != "" {
			t.Fatalf("status of a suspended object changed:\n%s", diff)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		ns := h.namespace(t, "wrong-password")
		h.secret(t, ns, "creds", map[string]string{"username": "flotilla", "password": "wrong"})
		obj := &sourcev1.GitRepository{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"},
			Spec: sourcev1.GitRepositorySpec{
				URL:       repo.URL(),
				Interval:  metav1.Duration{Duration: time.Hour},
				SecretRef: &meta.LocalObjectReference{Name: "creds"},
			},
		}
		if err := h.c.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
		got := h.waitFor(t, ns, "fleet", func(o *sourcev1.GitRepository) error {
			c := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != meta.GitOperationFailedReason {
				return fmt.Errorf("Ready = %+v", c)
			}
			if !strings.Contains(c.Message, "authentication required") {
				return fmt.Errorf("message %q", c.Message)
			}
			return nil
		})
		if got.Status.Artifact != nil {
			t.Fatalf("artifact %+v without a successful fetch", got.Status.Artifact)
		}
		if c := apimeta.FindStatusCondition(got.Status.Conditions, meta.ArtifactInStorageCondition); c == nil || c.Status != metav1.ConditionFalse {
			t.Fatalf("ArtifactInStorage = %+v", c)
		}
		if got.Status.ObservedGeneration != 0 {
			t.Fatalf("observedGeneration %d after failures only", got.Status.ObservedGeneration)
		}
		h.waitFor(t, ns, "fleet", func(*sourcev1.GitRepository) error {
			for _, r := range eventReasons(t, h, ns, "fleet") {
				if r == "Warning/"+meta.GitOperationFailedReason {
					return nil
				}
			}
			return fmt.Errorf("no Warning event")
		})
	})

	t.Run("ssh without a secret stalls", func(t *testing.T) {
		ns := h.namespace(t, "ssh")
		obj := &sourcev1.GitRepository{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"},
			Spec:       sourcev1.GitRepositorySpec{URL: "ssh://git@example.invalid/fleet.git"},
		}
		if err := h.c.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
		h.waitFor(t, ns, "fleet", func(o *sourcev1.GitRepository) error {
			c := apimeta.FindStatusCondition(o.Status.Conditions, meta.StalledCondition)
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != meta.GitOperationFailedReason ||
				!strings.Contains(c.Message, "spec.secretRef") {
				return fmt.Errorf("Stalled = %+v", c)
			}
			return nil
		})
	})
}
