package oci_test

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/oci"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/registry"
	"github.com/flotilla-dev/flotilla/test/sourceenv"
)

// TestOCIRepository runs every scenario against one control plane with the
// OCIRepository controller, each object on its own and the scenarios in parallel.
func TestOCIRepository(t *testing.T) {
	h := sourceenv.Start(t, "hub", func(mgr ctrl.Manager, store *storage.Store) error {
		return (&oci.Reconciler{Store: store}).SetupWithManager(mgr)
	})
	reg := registry.New(t, registry.WithBasicAuth("flotilla", "s3cret"))
	d1 := reg.Push("fleet/app", "1.0.0", map[string]string{"deploy/app.yaml": "v: 1\n"})
	d2 := reg.Push("fleet/app", "1.2.0", map[string]string{"deploy/app.yaml": "v: 2\n"})
	reg.Push("fleet/app", "2.0.0", map[string]string{"deploy/app.yaml": "v: 3\n"})
	reg.Push("fleet/app", "not-semver", map[string]string{"deploy/app.yaml": "x\n"})

	ns := h.Namespace(t, "oci")
	h.Secret(t, ns, "creds", map[string]string{"username": "flotilla", "password": "s3cret"})
	h.Secret(t, ns, "wrong", map[string]string{"username": "flotilla", "password": "guess"})
	mk := func(t *testing.T, name, secret string, ref *sourcev1.OCIRepositoryRef) *sourcev1.OCIRepository {
		t.Helper()
		obj := &sourcev1.OCIRepository{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: sourcev1.OCIRepositorySpec{
				URL: reg.URL("fleet/app"), Ref: ref, Insecure: true,
				Interval:  metav1.Duration{Duration: time.Hour},
				SecretRef: &meta.LocalObjectReference{Name: secret},
			},
		}
		h.Create(t, obj)
		return obj
	}
	// Created up front, so that they are fetched while the scenarios start.
	tag := mk(t, "tag", "creds", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
	semver := mk(t, "semver", "creds", &sourcev1.OCIRepositoryRef{SemVer: "^1.0.0"})
	digest := mk(t, "digest", "creds", &sourcev1.OCIRepositoryRef{Digest: d2})

	t.Run("tag", func(t *testing.T) {
		t.Parallel()
		h.WaitFor(t, tag, sourceenv.ReadyWith("1.0.0@"+d1))
		if diff := cmp.Diff(map[string]string{"deploy/app.yaml": "v: 1\n"}, sourceenv.Download(t, tag.Status.Artifact)); diff != "" {
			t.Fatal(diff)
		}
		if !apimeta.IsStatusConditionTrue(tag.Status.Conditions, meta.ArtifactInStorageCondition) {
			t.Fatal("ArtifactInStorage not True")
		}
	})
	t.Run("semver", func(t *testing.T) {
		t.Parallel()
		t.Run("picks the newest match", func(t *testing.T) {
			h.WaitFor(t, semver, sourceenv.ReadyWith("1.2.0@"+d2))
			if diff := cmp.Diff(map[string]string{"deploy/app.yaml": "v: 2\n"}, sourceenv.Download(t, semver.Status.Artifact)); diff != "" {
				t.Fatal(diff)
			}
		})
		t.Run("new tag on request", func(t *testing.T) {
			d3 := reg.Push("fleet/app", "1.3.0", map[string]string{"deploy/app.yaml": "v: 1.3\n"})
			at := h.RequestReconcile(t, semver)
			h.WaitFor(t, semver, sourceenv.ReadyWith("1.3.0@"+d3))
			if semver.Status.LastHandledReconcileAt != at {
				t.Fatalf("lastHandledReconcileAt %q", semver.Status.LastHandledReconcileAt)
			}
		})
	})
	t.Run("digest", func(t *testing.T) {
		t.Parallel()
		h.WaitFor(t, digest, sourceenv.ReadyWith(d2))
	})
	t.Run("suspended is left alone", func(t *testing.T) {
		t.Parallel()
		obj := mk(t, "suspended", "creds", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
		other := mk(t, "barrier", "creds", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
		h.WaitFor(t, obj, sourceenv.ReadyWith("1.0.0@"+d1))
		h.WaitFor(t, other, sourceenv.Ready)
		h.Update(t, obj, func() {
			obj.Spec.Suspend = true
			obj.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "1.2.0"}
		})
		h.Settle(t, other)
		h.Get(t, obj)
		if obj.Status.Artifact.Revision != "1.0.0@"+d1 || obj.Status.ObservedGeneration == obj.Generation {
			t.Fatalf("a suspended object was reconciled: %+v", obj.Status)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		obj := mk(t, "wrong-password", "wrong", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
		h.WaitFor(t, obj, sourceenv.FailedWith(sourcev1.AuthenticationFailedReason, "UNAUTHORIZED"), sourceenv.NoArtifact)
		h.WaitForEvent(t, obj, "Warning/"+sourcev1.AuthenticationFailedReason)
	})
	t.Run("missing secret waits", func(t *testing.T) {
		t.Parallel()
		obj := mk(t, "missing-secret", "missing", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
		h.WaitFor(t, obj, sourceenv.FailedWith(sourcev1.SecretNotFoundReason, "missing"),
			sourceenv.ConditionIs(meta.ReconcilingCondition, metav1.ConditionTrue))
	})
	t.Run("invalid semver range stalls", func(t *testing.T) {
		t.Parallel()
		obj := mk(t, "bad-range", "creds", &sourcev1.OCIRepositoryRef{SemVer: "not a range"})
		h.WaitFor(t, obj, sourceenv.StalledWith(sourcev1.InvalidSemVerReason, "invalid semver range"))
	})
	t.Run("dockerconfigjson secret", func(t *testing.T) {
		t.Parallel()
		dockerSecret := func(name, host, user, pass string) {
			cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, "https://"+host+"/v1/", base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
			h.Create(t, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Type:       corev1.SecretTypeDockerConfigJson,
				Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)},
			})
		}
		dockerSecret("docker-creds", reg.Host(), "flotilla", "s3cret")
		// The right password, but for another host: never sent to this registry.
		dockerSecret("docker-other-host", "other.example", "flotilla", "s3cret")
		dockerSecret("docker-wrong", reg.Host(), "flotilla", "guess")

		obj := mk(t, "dockerconfig", "docker-creds", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
		h.WaitFor(t, obj, sourceenv.ReadyWith("1.0.0@"+d1))
		other := mk(t, "dockerconfig-other-host", "docker-other-host", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
		h.WaitFor(t, other, sourceenv.FailedWith(sourcev1.AuthenticationFailedReason, "no entry for registry "+reg.Host()), sourceenv.NoArtifact)
		wrong := mk(t, "dockerconfig-wrong", "docker-wrong", &sourcev1.OCIRepositoryRef{Tag: "1.0.0"})
		h.WaitFor(t, wrong, sourceenv.FailedWith(sourcev1.AuthenticationFailedReason, "UNAUTHORIZED"), sourceenv.NoArtifact)
	})
	t.Run("layerSelector", func(t *testing.T) {
		t.Parallel()
		const manifestsType = "application/vnd.example.manifests.v1.tar+gzip"
		const chartType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
		pack := func(files map[string]string) []byte {
			m := map[string][]byte{}
			for k, v := range files {
				m[k] = []byte(v)
			}
			data, err := artifact.Pack(m)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
		chart := pack(map[string]string{"demo/Chart.yaml": "name: demo\n"})
		dl := reg.PushLayers("fleet/multi", "v1",
			registry.Layer{Data: []byte("signature bytes"), MediaType: "application/vnd.example.signature"},
			registry.Layer{Data: chart, MediaType: chartType, Title: "demo-0.1.0.tgz"},
			registry.Layer{Data: pack(map[string]string{"app.yaml": "selected\n"}), MediaType: manifestsType},
		)
		mkSel := func(name string, sel *sourcev1.OCILayerSelector) *sourcev1.OCIRepository {
			obj := &sourcev1.OCIRepository{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: sourcev1.OCIRepositorySpec{
					URL: reg.URL("fleet/multi"), Ref: &sourcev1.OCIRepositoryRef{Tag: "v1"}, Insecure: true,
					Interval: metav1.Duration{Duration: time.Hour}, SecretRef: &meta.LocalObjectReference{Name: "creds"},
					LayerSelector: sel,
				},
			}
			h.Create(t, obj)
			return obj
		}
		extract := mkSel("select-extract", &sourcev1.OCILayerSelector{MediaType: manifestsType, Operation: sourcev1.OCILayerExtract})
		copied := mkSel("select-copy", &sourcev1.OCILayerSelector{MediaType: chartType, Operation: sourcev1.OCILayerCopy})
		missing := mkSel("select-missing", &sourcev1.OCILayerSelector{MediaType: "application/vnd.none"})
		first := mkSel("no-selector", nil)

		h.WaitFor(t, extract, sourceenv.ReadyWith("v1@"+dl))
		if diff := cmp.Diff(map[string]string{"app.yaml": "selected\n"}, sourceenv.Download(t, extract.Status.Artifact)); diff != "" {
			t.Fatalf("extracted files (-want +got):\n%s", diff)
		}
		h.WaitFor(t, copied, sourceenv.ReadyWith("v1@"+dl))
		if diff := cmp.Diff(map[string]string{"demo-0.1.0.tgz": string(chart)}, sourceenv.Download(t, copied.Status.Artifact)); diff != "" {
			t.Fatalf("copied layer (-want +got):\n%s", diff)
		}
		h.WaitFor(t, missing, sourceenv.FailedWith(sourcev1.InvalidLayerReason, "none of media type application/vnd.none"), sourceenv.NoArtifact)
		// Without a selector the first layer is the content, and it is no tar.gz here.
		h.WaitFor(t, first, sourceenv.FailedWith(sourcev1.InvalidArtifactReason, ""), sourceenv.NoArtifact)

		// A new selector that matches nothing keeps the last good artifact.
		good := extract.Status.Artifact.DeepCopy()
		h.Update(t, extract, func() { extract.Spec.LayerSelector.MediaType = "application/vnd.none" })
		h.WaitFor(t, extract, sourceenv.FailedWith(sourcev1.InvalidLayerReason, ""))
		if diff := cmp.Diff(good, extract.Status.Artifact); diff != "" {
			t.Fatalf("artifact changed on failure:\n%s", diff)
		}
	})
	t.Run("layer that is not a tar.gz", func(t *testing.T) {
		t.Parallel()
		reg.PushLayer("fleet/app", "broken", []byte("just bytes"))
		obj := mk(t, "broken", "creds", &sourcev1.OCIRepositoryRef{Tag: "broken"})
		h.WaitFor(t, obj, sourceenv.FailedWith(sourcev1.InvalidArtifactReason, ""))
	})
}
