package helm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/helm"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/helmrepo"
	"github.com/flotilla-dev/flotilla/test/registry"
)

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

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startHub(t *testing.T) (client.Client, *storage.Store) {
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
	t.Cleanup(func() { _ = env.Stop() })
	store, err := storage.New(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	artifacts := httptest.NewServer(store.Handler())
	t.Cleanup(artifacts.Close)
	store.SetBaseURL(artifacts.URL)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&helm.Reconciler{Store: store}).SetupWithManager(mgr); err != nil {
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
	return c, store
}

func waitFor(t *testing.T, c client.Client, ns, name string, cond func(*sourcev1.HelmRepository) error) *sourcev1.HelmRepository {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		obj := &sourcev1.HelmRepository{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
			t.Fatal(err)
		}
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

func ready(o *sourcev1.HelmRepository) error {
	c := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
	if c == nil || c.Status != metav1.ConditionTrue {
		return fmt.Errorf("not Ready: %v", c)
	}
	if o.Status.ObservedGeneration != o.Generation {
		return fmt.Errorf("observedGeneration %d, generation %d", o.Status.ObservedGeneration, o.Generation)
	}
	return nil
}

func failedWith(reason, msg string) func(*sourcev1.HelmRepository) error {
	return func(o *sourcev1.HelmRepository) error {
		c := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason || !strings.Contains(c.Message, msg) {
			return fmt.Errorf("Ready = %+v, want False/%s with %q", c, reason, msg)
		}
		return nil
	}
}

// indexOf downloads the artifact and returns its index.yaml.
func indexOf(t *testing.T, a *meta.Artifact) []byte {
	t.Helper()
	resp, err := http.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if d := artifact.Digest(data); d != a.Digest {
		t.Fatalf("downloaded digest %s, status says %s", d, a.Digest)
	}
	files, err := artifact.Unpack(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("artifact files %v, want only index.yaml", files)
	}
	return files[helm.IndexFile]
}

func TestHelmRepository(t *testing.T) {
	c, store := startHub(t)
	ctx := context.Background()
	charts := helmrepo.New(t, helmrepo.WithBasicAuth("flotilla", "s3cret"))
	charts.AddChart("podinfo", "6.5.0")
	charts.AddChart("podinfo", "6.5.1")

	ns := "helm"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]map[string]string{
		"creds": {"username": "flotilla", "password": "s3cret"},
		"wrong": {"username": "flotilla", "password": "guess"},
	} {
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name, url, typ, secret string) {
		t.Helper()
		obj := &sourcev1.HelmRepository{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       sourcev1.HelmRepositorySpec{URL: url, Type: typ, Interval: metav1.Duration{Duration: time.Hour}},
		}
		if secret != "" {
			obj.Spec.SecretRef = &meta.LocalObjectReference{Name: secret}
		}
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	mk("charts", charts.URL(), "", "creds")
	mk("wrong-password", charts.URL(), "", "wrong")

	t.Run("stores the index", func(t *testing.T) {
		got := waitFor(t, c, ns, "charts", ready)
		index := indexOf(t, got.Status.Artifact)
		if got.Status.Artifact.Revision != fmt.Sprintf("sha256:%x", sha256.Sum256(index)) {
			t.Fatalf("revision %s is not the sha256 of the index", got.Status.Artifact.Revision)
		}
		var parsed struct {
			Entries map[string][]struct{ Version string } `json:"entries"`
		}
		if err := yaml.Unmarshal(index, &parsed); err != nil {
			t.Fatal(err)
		}
		if n := len(parsed.Entries["podinfo"]); n != 2 {
			t.Fatalf("index lists %d podinfo versions, want 2", n)
		}
		if !apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.ArtifactInStorageCondition) {
			t.Fatal("ArtifactInStorage not True")
		}
	})
	t.Run("new chart on request", func(t *testing.T) {
		before := waitFor(t, c, ns, "charts", ready).Status.Artifact.Revision
		charts.AddChart("podinfo", "6.6.0")
		obj := &sourcev1.HelmRepository{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "charts"}, obj); err != nil {
			t.Fatal(err)
		}
		obj.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: "now"}
		if err := c.Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
		waitFor(t, c, ns, "charts", func(o *sourcev1.HelmRepository) error {
			if o.Status.LastHandledReconcileAt != "now" || o.Status.Artifact.Revision == before {
				return fmt.Errorf("not refetched: %+v", o.Status.Artifact)
			}
			return nil
		})
	})
	t.Run("fetch a chart", func(t *testing.T) {
		hr := waitFor(t, c, ns, "charts", ready)
		f := &helm.ChartFetcher{Reader: c, Store: store}
		a, err := f.FetchChart(ctx, hr, "podinfo", "~6.5.0")
		if err != nil {
			t.Fatal(err)
		}
		if a.Revision != "6.5.1" {
			t.Fatalf("revision %s, want the newest in ~6.5.0, 6.5.1", a.Revision)
		}
		data, err := store.Get(a.Digest)
		if err != nil {
			t.Fatal(err)
		}
		files, err := artifact.Unpack(bytes.NewReader(data), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(files["podinfo/Chart.yaml"]), "version: 6.5.1") ||
			!strings.Contains(string(files["podinfo/templates/configmap.yaml"]), "version: 6.5.1") {
			t.Fatalf("chart files %v", files)
		}
		if _, err := f.FetchChart(ctx, hr, "podinfo", ">=7"); !errors.Is(err, helm.ErrChartNotFound) {
			t.Fatalf("FetchChart >=7 = %v, want ErrChartNotFound", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		got := waitFor(t, c, ns, "wrong-password", failedWith(sourcev1.AuthenticationFailedReason, "401"))
		if got.Status.Artifact != nil {
			t.Fatalf("artifact %+v with wrong credentials", got.Status.Artifact)
		}
	})
	t.Run("broken index", func(t *testing.T) {
		broken := helmrepo.New(t)
		broken.WriteIndex([]byte("entries: [not, a, map\n"))
		mk("broken", broken.URL(), "", "")
		waitFor(t, c, ns, "broken", failedWith(sourcev1.InvalidArtifactReason, "invalid repository index"))
	})
	t.Run("oci", func(t *testing.T) {
		reg := registry.New(t)
		mk("oci", "oci://"+reg.Host()+"/charts", "oci", "")
		got := waitFor(t, c, ns, "oci", ready)
		if got.Status.Artifact != nil {
			t.Fatalf("an oci repository has no index artifact: %+v", got.Status.Artifact)
		}
	})
}
