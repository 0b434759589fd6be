package oci_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	"github.com/flotilla-dev/flotilla/hub/source/oci"
	"github.com/flotilla-dev/flotilla/hub/storage"
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

// startHub runs a real API server and a manager with the OCIRepository controller.
func startHub(t *testing.T) client.Client {
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
	if err := (&oci.Reconciler{Store: store}).SetupWithManager(mgr); err != nil {
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
	return c
}

func waitFor(t *testing.T, c client.Client, ns, name string, cond func(*sourcev1.OCIRepository) error) *sourcev1.OCIRepository {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		obj := &sourcev1.OCIRepository{}
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

func readyWith(revision string) func(*sourcev1.OCIRepository) error {
	return func(o *sourcev1.OCIRepository) error {
		c := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("not Ready: %v", c)
		}
		if o.Status.Artifact == nil || o.Status.Artifact.Revision != revision {
			return fmt.Errorf("artifact %+v, want revision %s", o.Status.Artifact, revision)
		}
		if o.Status.ObservedGeneration != o.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", o.Status.ObservedGeneration, o.Generation)
		}
		return nil
	}
}

func download(t *testing.T, a *meta.Artifact) map[string]string {
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
	out := map[string]string{}
	for k, v := range files {
		out[k] = string(v)
	}
	return out
}

func TestOCIRepository(t *testing.T) {
	c := startHub(t)
	ctx := context.Background()
	reg := registry.New(t, registry.WithBasicAuth("flotilla", "s3cret"))
	d1 := reg.Push("fleet/app", "1.0.0", map[string]string{"deploy/app.yaml": "v: 1\n"})
	d2 := reg.Push("fleet/app", "1.2.0", map[string]string{"deploy/app.yaml": "v: 2\n"})
	reg.Push("fleet/app", "2.0.0", map[string]string{"deploy/app.yaml": "v: 3\n"})
	reg.Push("fleet/app", "not-semver", map[string]string{"deploy/app.yaml": "x\n"})

	ns := "oci"
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
	mk := func(name, secret string, ref *sourcev1.OCIRepositoryRef) {
		t.Helper()
		obj := &sourcev1.OCIRepository{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: sourcev1.OCIRepositorySpec{
				URL: reg.URL("fleet/app"), Ref: ref, Insecure: true,
				Interval:  metav1.Duration{Duration: time.Hour},
				SecretRef: &meta.LocalObjectReference{Name: secret},
			},
		}
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	mk("tag", "creds", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
	mk("semver", "creds", &sourcev1.OCIRepositoryRef{SemVer: "^1.0.0"})
	mk("digest", "creds", &sourcev1.OCIRepositoryRef{Digest: d2})
	mk("wrong-password", "wrong", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})

	t.Run("tag", func(t *testing.T) {
		got := waitFor(t, c, ns, "tag", readyWith("1.0.0@"+d1))
		if diff := cmp.Diff(map[string]string{"deploy/app.yaml": "v: 1\n"}, download(t, got.Status.Artifact)); diff != "" {
			t.Fatal(diff)
		}
		if !apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.ArtifactInStorageCondition) {
			t.Fatal("ArtifactInStorage not True")
		}
	})
	t.Run("semver picks the newest match", func(t *testing.T) {
		got := waitFor(t, c, ns, "semver", readyWith("1.2.0@"+d2))
		if diff := cmp.Diff(map[string]string{"deploy/app.yaml": "v: 2\n"}, download(t, got.Status.Artifact)); diff != "" {
			t.Fatal(diff)
		}
	})
	t.Run("digest", func(t *testing.T) {
		waitFor(t, c, ns, "digest", readyWith(d2))
	})
	t.Run("new tag on request", func(t *testing.T) {
		d3 := reg.Push("fleet/app", "1.3.0", map[string]string{"deploy/app.yaml": "v: 1.3\n"})
		obj := &sourcev1.OCIRepository{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "semver"}, obj); err != nil {
			t.Fatal(err)
		}
		obj.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: "now"}
		if err := c.Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, c, ns, "semver", readyWith("1.3.0@"+d3))
		if got.Status.LastHandledReconcileAt != "now" {
			t.Fatalf("lastHandledReconcileAt %q", got.Status.LastHandledReconcileAt)
		}
	})
	t.Run("suspended is left alone", func(t *testing.T) {
		mk("suspended", "creds", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
		obj := &sourcev1.OCIRepository{}
		waitFor(t, c, ns, "suspended", readyWith("1.0.0@"+d1))
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "suspended"}, obj); err != nil {
			t.Fatal(err)
		}
		obj.Spec.Suspend = true
		obj.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "1.2.0"}
		if err := c.Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		got := waitFor(t, c, ns, "suspended", func(*sourcev1.OCIRepository) error { return nil })
		if got.Status.Artifact.Revision != "1.0.0@"+d1 || got.Status.ObservedGeneration == got.Generation {
			t.Fatalf("a suspended object was reconciled: %+v", got.Status)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		got := waitFor(t, c, ns, "wrong-password", func(o *sourcev1.OCIRepository) error {
			cond := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != sourcev1.AuthenticationFailedReason ||
				!strings.Contains(cond.Message, "UNAUTHORIZED") {
				return fmt.Errorf("Ready = %+v", cond)
			}
			return nil
		})
		if got.Status.Artifact != nil {
			t.Fatalf("artifact %+v with wrong credentials", got.Status.Artifact)
		}
		waitFor(t, c, ns, "wrong-password", func(*sourcev1.OCIRepository) error {
			list := &eventsv1.EventList{}
			if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, e := range list.Items {
				if e.Regarding.Name == "wrong-password" && e.Reason == sourcev1.AuthenticationFailedReason && e.Type == corev1.EventTypeWarning {
					return nil
				}
			}
			return fmt.Errorf("no Warning event")
		})
	})
	t.Run("layer that is not a tar.gz", func(t *testing.T) {
		reg.PushLayer("fleet/app", "broken", []byte("just bytes"))
		mk("broken", "creds", &sourcev1.OCIRepositoryRef{Tag: "broken"})
		waitFor(t, c, ns, "broken", func(o *sourcev1.OCIRepository) error {
			cond := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != sourcev1.InvalidArtifactReason {
				return fmt.Errorf("Ready = %+v", cond)
			}
			return nil
		})
	})
}
