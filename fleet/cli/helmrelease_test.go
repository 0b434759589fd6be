package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

const helmNS = "helm-cli"

// helmObjects creates, in their own namespace, a HelmRepository and a HelmRelease
// whose statuses are set as a hub would set them mid-rollout: three clusters on two
// chart versions, one failed, paused after the canary stage.
func helmObjects(t *testing.T, c client.Client) {
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: helmNS}}
	repo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: helmNS},
		Spec:       sourcev1.HelmRepositorySpec{URL: "https://charts.example.com"},
	}
	hr := &deliveryv1.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: helmNS},
		Spec: deliveryv1.HelmReleaseSpec{
			Chart: deliveryv1.HelmChartTemplate{
				Chart: "podinfo", Version: "6.x",
				SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"},
			},
			Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}},
		},
	}
	t.Cleanup(func() {
		for _, o := range []client.Object{hr, repo} {
			if err := c.Delete(ctx, o); err != nil {
				t.Errorf("delete %s: %v", o.GetName(), err)
			}
		}
	})
	must(client.IgnoreAlreadyExists(c.Create(ctx, ns)))

	must(c.Create(ctx, repo))
	repo.Status.Artifact = &meta.Artifact{
		URL: "http://hub/index.tar.gz", Revision: "sha256:" + strings.Repeat("b", 64),
		Digest: "sha256:" + strings.Repeat("c", 64), LastUpdateTime: metav1.Now(),
	}
	setReady(repo, metav1.ConditionTrue, meta.SucceededReason, "stored index with 1 chart")
	must(c.Status().Update(ctx, repo))

	must(c.Create(ctx, hr))
	hr.Status.LastAppliedRevision = "6.5.0"
	hr.Status.Clusters = meta.ClusterCounts{Targeted: 3, Applied: 2, Ready: 1, Failed: 1}
	hr.Status.ChartVersions = []meta.VersionCount{{Version: "6.5.0", Clusters: 2}, {Version: "6.4.0", Clusters: 1}}
	hr.Status.Failures = []meta.ClusterFailure{{Cluster: "spoke-2", Message: "upgrade failed: timed out; rolled back to revision 3"}}
	hr.Status.Rollout = &deliveryv1.RolloutStatus{Revision: "6.5.0", Stage: "canary", Paused: true, Waiting: 1}
	setReady(hr, metav1.ConditionFalse, meta.ClustersFailedReason, "1 of 3 clusters failed")
	must(c.Status().Update(ctx, hr))
}

func TestHelmReleaseCommands(t *testing.T) {
	h := hubPlane.Get(t)
	c, kubeconfig := h.cp.Client(), h.kubeconfig
	helmObjects(t, c)
	ctx := context.Background()
	key := client.ObjectKey{Namespace: helmNS, Name: "podinfo"}

	t.Run("get helmreleases", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "get", "hr", "-n", helmNS)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("want a header and one row, got\n%s", out)
		}
		if got, want := strings.Fields(lines[0]), []string{"NAME", "CHART", "VERSION", "TARGETED", "APPLIED", "HEALTHY", "FAILED", "AGE", "READY", "STATUS"}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("header %q, want %q", got, want)
		}
		f := strings.Fields(lines[1])
		if got := strings.Join(f[:7], " "); got != "podinfo podinfo 6.5.0 3 2 1 1" {
			t.Errorf("row %q", lines[1])
		}
		if !strings.Contains(lines[1], "False") || !strings.Contains(lines[1], "1 of 3 clusters failed") {
			t.Errorf("row %q lacks the Ready condition", lines[1])
		}
	})

	t.Run("get helmreleases across namespaces, and as yaml", func(t *testing.T) {
		for _, name := range []string{"helmreleases", "helmrelease", "HR"} {
			out, _, err := run(t, kubeconfig, "get", name, "-A")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out, "NAMESPACE") || !strings.Contains(out, helmNS) {
				t.Errorf("get %s -A:\n%s", name, out)
			}
		}
		out, _, err := run(t, kubeconfig, "get", "hr", "podinfo", "-n", helmNS, "-o", "yaml")
		if err != nil {
			t.Fatal(err)
		}
		var got deliveryv1.HelmRelease
		if err := yaml.Unmarshal([]byte(out), &got); err != nil || got.Kind != deliveryv1.HelmReleaseKind || got.Spec.Chart.Chart != "podinfo" {
			t.Errorf("yaml %v: %s", err, out)
		}
		out, _, err = run(t, kubeconfig, "get", "helmrepo", "-n", helmNS)
		if err != nil || !strings.Contains(out, "https://charts.example.com") {
			t.Errorf("get helmrepo: %v\n%s", err, out)
		}
	})

	t.Run("status", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "status")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", out)
		for _, want := range []string{
			"HELMRELEASES", helmNS + "/podinfo", "6.5.0×2,6.4.0×1",
			"spoke-2: upgrade failed: timed out; rolled back to revision 3",
			"HelmRepository", helmNS + "/charts",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in\n%s", want, out)
			}
		}
	})

	t.Run("status as json", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "status", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var s FleetStatus
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var got *HelmReleaseSummary
		for i := range s.HelmReleases {
			if s.HelmReleases[i].Namespace == helmNS && s.HelmReleases[i].Name == "podinfo" {
				got = &s.HelmReleases[i]
			}
		}
		if got == nil {
			t.Fatalf("no HelmRelease in %s", out)
		}
		want := []VersionCount{{"6.5.0", 2}, {"6.4.0", 1}}
		if got.Chart != "podinfo" || got.Version != "6.5.0" || got.Clusters != (RolloutCounts{3, 2, 1, 1}) ||
			len(got.ChartVersions) != 2 || got.ChartVersions[0] != want[0] || got.ChartVersions[1] != want[1] ||
			got.FirstFailure == nil || got.FirstFailure.Cluster != "spoke-2" {
			t.Errorf("helmRelease %+v", got)
		}
	})

	t.Run("rollout approve", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "rollout", "approve", "helmrelease", "podinfo", "-n", helmNS)
		if err != nil || !strings.Contains(out, "approved stage canary of helmrelease "+helmNS+"/podinfo (revision 6.5.0)") {
			t.Fatalf("%v: %s", err, out)
		}
		var got deliveryv1.HelmRelease
		if err := c.Get(ctx, key, &got); err != nil || !strings.HasPrefix(got.Annotations[deliveryv1.ApprovedStageAnnotation], "canary@") {
			t.Errorf("after approve: %v, annotations %v", err, got.Annotations)
		}
		if _, _, err := run(t, kubeconfig, "rollout", "approve", "pods", "x"); err == nil || !strings.Contains(err.Error(), "helmrelease") {
			t.Errorf("unknown kind: %v", err)
		}
	})

	t.Run("reconcile with its source, suspend, resume", func(t *testing.T) {
		repoKey := client.ObjectKey{Namespace: helmNS, Name: "charts"}
		// Play the two controllers: each handles a request once it sees one.
		repoDone := handleOnce(t, c, repoKey, &sourcev1.HelmRepository{}, func(o client.Object, at string) {
			o.(*sourcev1.HelmRepository).Status.LastHandledReconcileAt = at
		})
		hrDone := handleOnce(t, c, key, &deliveryv1.HelmRelease{}, func(o client.Object, at string) {
			o.(*deliveryv1.HelmRelease).Status.LastHandledReconcileAt = at
		})
		_, errOut, err := run(t, kubeconfig, "reconcile", "hr", "podinfo", "-n", helmNS, "--with-source", "--timeout", "10s")
		<-repoDone
		<-hrDone
		if err != nil ||
			!strings.Contains(errOut, "✔ HelmRepository "+helmNS+"/charts reconciled, revision sha256:") ||
			!strings.Contains(errOut, "✔ HelmRelease "+helmNS+"/podinfo reconciled, revision 6.5.0") {
			t.Errorf("reconcile --with-source: %v\n%s", err, errOut)
		}

		if _, _, err := run(t, kubeconfig, "reconcile", "source", "helm", "charts", "-n", helmNS, "--timeout", "300ms"); err == nil || !strings.Contains(err.Error(), "has not handled") {
			t.Errorf("reconcile source helm without a controller: %v", err)
		}

		if _, _, err := run(t, kubeconfig, "suspend", "helmrelease", "podinfo", "-n", helmNS); err != nil {
			t.Fatal(err)
		}
		var got deliveryv1.HelmRelease
		if err := c.Get(ctx, key, &got); err != nil || !got.Spec.Suspend {
			t.Fatalf("after suspend: %v, suspend=%v", err, got.Spec.Suspend)
		}
		if _, _, err := run(t, kubeconfig, "reconcile", "helmreleases", "podinfo", "-n", helmNS); err == nil || !strings.Contains(err.Error(), "suspended") {
			t.Errorf("reconcile of a suspended HelmRelease: %v", err)
		}
		if out, _, err := run(t, kubeconfig, "get", "hr", "-n", helmNS); err != nil || !strings.Contains(out, "suspended: ") {
			t.Errorf("get of a suspended HelmRelease: %v\n%s", err, out)
		}
		before := got.Annotations[meta.ReconcileRequestedAtAnnotation]
		if _, _, err := run(t, kubeconfig, "resume", "hr", "podinfo", "-n", helmNS, "--wait=false"); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, key, &got); err != nil || got.Spec.Suspend || got.Annotations[meta.ReconcileRequestedAtAnnotation] == before {
			t.Errorf("after resume: %v, suspend=%v, annotations %v", err, got.Spec.Suspend, got.Annotations)
		}
	})
}

// handleOnce plays a controller for one object: once a reconcile request appears, it
// records it handled and sets Ready=True.
func handleOnce(t *testing.T, c client.Client, key client.ObjectKey, obj conditioned, handled func(client.Object, string)) chan struct{} {
	t.Helper()
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			o := obj.DeepCopyObject().(conditioned)
			if err := c.Get(ctx, key, o); err == nil {
				if at := o.GetAnnotations()[meta.ReconcileRequestedAtAnnotation]; at != "" && at != lastHandledOf(o) {
					handled(o, at)
					setReady(o.(interface{ SetConditions([]metav1.Condition) }), metav1.ConditionTrue, meta.SucceededReason, "reconciled")
					if err := c.Status().Update(ctx, o); err == nil {
						return
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return done
}

func lastHandledOf(o client.Object) string {
	switch t := o.(type) {
	case *sourcev1.HelmRepository:
		return t.Status.LastHandledReconcileAt
	case *deliveryv1.HelmRelease:
		return t.Status.LastHandledReconcileAt
	}
	return ""
}

// TestHelmReleaseSource: --with-source follows the chart's sourceRef whatever its kind.
func TestHelmReleaseSource(t *testing.T) {
	for _, tc := range []struct {
		ref      deliveryv1.ChartSourceReference
		want     *reconcilable
		wantKey  client.ObjectKey
		describe string
	}{
		{deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}, helmRepositoryKind, client.ObjectKey{Namespace: "apps", Name: "charts"}, "helm repository in its own namespace"},
		{deliveryv1.ChartSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "fleet", Namespace: "flotilla-system"}, gitRepositoryKind, client.ObjectKey{Namespace: "flotilla-system", Name: "fleet"}, "git repository elsewhere"},
		{deliveryv1.ChartSourceReference{Kind: sourcev1.OCIRepositoryKind, Name: "podinfo"}, ociRepositoryKind, client.ObjectKey{Namespace: "apps", Name: "podinfo"}, "oci repository"},
		{deliveryv1.ChartSourceReference{Kind: "Bucket", Name: "b"}, nil, client.ObjectKey{}, "a kind the CLI does not know"},
	} {
		hr := &deliveryv1.HelmRelease{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps"},
			Spec:       deliveryv1.HelmReleaseSpec{Chart: deliveryv1.HelmChartTemplate{Chart: "web", SourceRef: tc.ref}},
		}
		k, key := helmReleaseKind.source(hr)
		if k != tc.want || key != tc.wantKey {
			t.Errorf("%s: got %v %v, want %v %v", tc.describe, k, key, tc.want, tc.wantKey)
		}
	}
}

// TestHelmReleaseExample: the README's HelmRelease example is accepted by the API
// server, and its chart loads and takes its values (Helm's loader and schema check),
// once the spoke has substituted ${cluster_name}.
func TestHelmReleaseExample(t *testing.T) {
	h := hubPlane.Get(t)
	ctx := context.Background()
	data, err := os.ReadFile("../../examples/helmrelease-hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var hr *deliveryv1.HelmRelease
	for _, doc := range strings.Split(string(data), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := h.cp.Client().Create(ctx, u, client.DryRunAll); err != nil {
			t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		if u.GetKind() == deliveryv1.HelmReleaseKind {
			hr = &deliveryv1.HelmRelease{}
			if err := yaml.Unmarshal([]byte(doc), hr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if hr == nil {
		t.Fatal("no HelmRelease in the example")
	}

	chrt, err := loader.LoadDir(filepath.Join("../../examples/fleet-demo", hr.Spec.Chart.Chart))
	if err != nil {
		t.Fatal(err)
	}
	values := strings.ReplaceAll(string(hr.Spec.Values.Raw), "${cluster_name}", "spoke-1")
	overrides, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	opts := chartutil.ReleaseOptions{Name: hr.EffectiveReleaseName(), Namespace: hr.EffectiveTargetNamespace(), IsInstall: true}
	vals, err := chartutil.ToRenderValues(chrt, overrides, opts, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	// Rendering is the hub's to test (Helm's engine is not a dependency of the CLI):
	// here, the values the templates read.
	v, ok := vals["Values"].(chartutil.Values)
	if !ok || v["cluster"] != "spoke-1" || v["greeting"] != "Hello from a Helm release" || v["color"] != "green" {
		t.Errorf("values %v", vals["Values"])
	}
	if len(chrt.Templates) != 3 {
		t.Errorf("templates %d, want 3", len(chrt.Templates))
	}

	bad, _ := chartutil.ReadValues([]byte("color: purple"))
	if _, err := chartutil.ToRenderValues(chrt, bad, opts, chartutil.DefaultCapabilities); err == nil {
		t.Error("the chart's schema let color: purple through")
	}
}
