package helm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/helm"
	"github.com/flotilla-dev/flotilla/hub/storage"
	chartspkg "github.com/flotilla-dev/flotilla/test/charts"
	"github.com/flotilla-dev/flotilla/test/helmrepo"
	"github.com/flotilla-dev/flotilla/test/registry"
	"github.com/flotilla-dev/flotilla/test/sourceenv"
)

// indexOf downloads the artifact and returns its index.yaml, its only file.
func indexOf(t *testing.T, a *meta.Artifact) []byte {
	t.Helper()
	files := sourceenv.Download(t, a)
	if len(files) != 1 {
		t.Fatalf("artifact files %v, want only index.yaml", files)
	}
	return []byte(files[helm.IndexFile])
}

// TestHelmRepository runs every scenario against one control plane with the
// HelmRepository controller, the scenarios in parallel.
func TestHelmRepository(t *testing.T) {
	h := sourceenv.Start(t, "hub", func(mgr ctrl.Manager, store *storage.Store) error {
		return (&helm.Reconciler{Store: store}).SetupWithManager(mgr)
	})
	charts := helmrepo.New(t, helmrepo.WithBasicAuth("flotilla", "s3cret"))
	charts.AddChart("podinfo", "6.5.0")
	charts.AddChart("podinfo", "6.5.1")

	ns := h.Namespace(t, "helm")
	h.Secret(t, ns, "creds", map[string]string{"username": "flotilla", "password": "s3cret"})
	h.Secret(t, ns, "wrong", map[string]string{"username": "flotilla", "password": "guess"})
	mk := func(t *testing.T, name, url, typ, secret string) *sourcev1.HelmRepository {
		t.Helper()
		obj := &sourcev1.HelmRepository{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       sourcev1.HelmRepositorySpec{URL: url, Type: typ, Interval: metav1.Duration{Duration: time.Hour}},
		}
		if secret != "" {
			obj.Spec.SecretRef = &meta.LocalObjectReference{Name: secret}
		}
		h.Create(t, obj)
		return obj
	}

	t.Run("charts", func(t *testing.T) {
		t.Parallel()
		obj := mk(t, "charts", charts.URL(), "", "creds")
		t.Run("stores the index", func(t *testing.T) {
			h.WaitFor(t, obj, sourceenv.Ready)
			index := indexOf(t, obj.Status.Artifact)
			if obj.Status.Artifact.Revision != fmt.Sprintf("sha256:%x", sha256.Sum256(index)) {
				t.Fatalf("revision %s is not the sha256 of the index", obj.Status.Artifact.Revision)
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
			if !apimeta.IsStatusConditionTrue(obj.Status.Conditions, meta.ArtifactInStorageCondition) {
				t.Fatal("ArtifactInStorage not True")
			}
		})
		t.Run("new chart on request", func(t *testing.T) {
			h.WaitFor(t, obj, sourceenv.Ready)
			before := obj.Status.Artifact.Revision
			charts.AddChart("podinfo", "6.6.0")
			at := h.RequestReconcile(t, obj)
			h.WaitFor(t, obj, sourceenv.Handled(at), func(o sourceenv.Source) error {
				if o.GetArtifact().Revision == before {
					return fmt.Errorf("not refetched: %+v", o.GetArtifact())
				}
				return nil
			})
		})
		t.Run("fetch a chart", func(t *testing.T) {
			h.WaitFor(t, obj, sourceenv.Ready)
			ctx := context.Background()
			f := &helm.ChartFetcher{Reader: h.Client, Store: h.Store}
			a, err := f.FetchChart(ctx, obj, "podinfo", "~6.5.0")
			if err != nil {
				t.Fatal(err)
			}
			if a.Revision != "6.5.1" {
				t.Fatalf("revision %s, want the newest in ~6.5.0, 6.5.1", a.Revision)
			}
			data, err := h.Store.Get(a.Digest)
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
			if _, err := f.FetchChart(ctx, obj, "podinfo", ">=7"); !errors.Is(err, helm.ErrChartNotFound) {
				t.Fatalf("FetchChart >=7 = %v, want ErrChartNotFound", err)
			}
		})
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		obj := mk(t, "wrong-password", charts.URL(), "", "wrong")
		h.WaitFor(t, obj, sourceenv.FailedWith(sourcev1.AuthenticationFailedReason, "401"), sourceenv.NoArtifact)
	})
	t.Run("missing secret waits", func(t *testing.T) {
		t.Parallel()
		obj := mk(t, "missing-secret", charts.URL(), "", "missing")
		h.WaitFor(t, obj, sourceenv.FailedWith(sourcev1.SecretNotFoundReason, "missing"),
			sourceenv.ConditionIs(meta.ReconcilingCondition, metav1.ConditionTrue))
	})
	t.Run("broken index", func(t *testing.T) {
		t.Parallel()
		broken := helmrepo.New(t)
		broken.WriteIndex([]byte("entries: [not, a, map\n"))
		obj := mk(t, "broken", broken.URL(), "", "")
		h.WaitFor(t, obj, sourceenv.FailedWith(sourcev1.InvalidArtifactReason, "invalid repository index"))
	})
	t.Run("oci with a dockerconfigjson secret", func(t *testing.T) {
		t.Parallel()
		reg := registry.New(t, registry.WithBasicAuth("flotilla", "s3cret"))
		reg.PushChart("private", "app", "1.0.0", chartspkg.Simple("app", "1.0.0").Package(t))
		docker := func(name, host string) {
			cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte("flotilla:s3cret")))
			h.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)}})
		}
		docker("docker-creds", reg.Host())
		// The right password filed under another host is never sent to this registry.
		docker("docker-other", "other.example")
		obj := mk(t, "oci-private", "oci://"+reg.Host()+"/private", "oci", "docker-creds")
		h.WaitFor(t, obj, sourceenv.Ready)
		f := &helm.ChartFetcher{Reader: h.Client, Store: h.Store}
		if a, err := f.FetchChart(context.Background(), obj, "app", "1.0.0"); err != nil || a.Revision != "1.0.0" {
			t.Fatalf("FetchChart with the registry's entry: %+v, %v", a, err)
		}
		other := mk(t, "oci-other-host", "oci://"+reg.Host()+"/private", "oci", "docker-other")
		h.WaitFor(t, other, sourceenv.FailedWith(sourcev1.AuthenticationFailedReason, "other.example"))
		if _, err := f.FetchChart(context.Background(), other, "app", "1.0.0"); err == nil {
			t.Fatal("FetchChart with another host's entry succeeded")
		}
	})
	t.Run("oci", func(t *testing.T) {
		t.Parallel()
		reg := registry.New(t)
		obj := mk(t, "oci", "oci://"+reg.Host()+"/charts", "oci", "")
		h.WaitFor(t, obj, sourceenv.Ready)
		if obj.Status.Artifact != nil {
			t.Fatalf("an oci repository has no index artifact: %+v", obj.Status.Artifact)
		}
		if c := apimeta.FindStatusCondition(obj.Status.Conditions, meta.ArtifactInStorageCondition); c != nil {
			t.Fatalf("an oci repository has no ArtifactInStorage: %+v", c)
		}
		t.Run("fetch a chart", func(t *testing.T) {
			ctx := context.Background()
			for _, v := range []string{"1.0.0", "1.1.0", "1.2.0+build.1", "2.0.0"} {
				reg.PushChart("charts", "app", v, chartspkg.Simple("app", v).Package(t))
			}
			f := &helm.ChartFetcher{Reader: h.Client, Store: h.Store}
			a, err := f.FetchChart(ctx, obj, "app", "~1")
			if err != nil {
				t.Fatal(err)
			}
			if a.Revision != "1.2.0+build.1" {
				t.Fatalf("revision %s, want the newest in ~1 read back from its tag, 1.2.0+build.1", a.Revision)
			}
			files := sourceenv.Download(t, a)
			if !strings.Contains(files["app/Chart.yaml"], "version: 1.2.0+build.1") || files["app/templates/configmap.yaml"] == "" {
				t.Fatalf("chart files %v", files)
			}
			if a, err := f.FetchChart(ctx, obj, "app", "1.0.0"); err != nil || a.Revision != "1.0.0" {
				t.Fatalf("exact version: %+v, %v", a, err)
			}
			if _, err := f.FetchChart(ctx, obj, "app", ">=3"); !errors.Is(err, helm.ErrChartNotFound) {
				t.Fatalf("FetchChart >=3 = %v, want ErrChartNotFound", err)
			}
			// An OCI artifact that is not a chart is refused by its media type.
			reg.Push("charts/notachart", "1.0.0", map[string]string{"a.yaml": "x: 1\n"})
			if _, err := f.FetchChart(ctx, obj, "notachart", ""); err == nil || !strings.Contains(err.Error(), "not a Helm chart") {
				t.Fatalf("FetchChart of a non-chart = %v, want a media type error", err)
			}
		})
	})
}
