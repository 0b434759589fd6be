package helmrelease_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/helmrelease"
	"github.com/flotilla-dev/flotilla/hub/source/git"
	"github.com/flotilla-dev/flotilla/hub/source/helm"
	"github.com/flotilla-dev/flotilla/hub/source/oci"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/tenancy"
	"github.com/flotilla-dev/flotilla/test/charts"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/helmrepo"
	"github.com/flotilla-dev/flotilla/test/registry"
	"github.com/flotilla-dev/flotilla/test/sourceenv"
)

// hub is the control plane with the source controllers and the HelmRelease
// controller, signing with a real key.
type hub struct {
	*sourceenv.Hub
	pub ed25519.PublicKey
}

// TestHelmRelease runs every scenario against one control plane, in parallel, each
// in its own namespace with its own cluster.
func TestHelmRelease(t *testing.T) {
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(cluster string, a *fleetv1.Assignment) (string, error) {
		return artifact.SignStatement(key, cluster, a)
	}
	h := &hub{pub: key.Public().(ed25519.PublicKey)}
	h.Hub = sourceenv.Start(t, "hub", func(mgr ctrl.Manager, store *storage.Store) error {
		for _, c := range []interface{ SetupWithManager(ctrl.Manager) error }{
			&helm.Reconciler{Store: store},
			&git.Reconciler{Store: store},
			&oci.Reconciler{Store: store},
			&helmrelease.Reconciler{Client: mgr.GetClient(), Store: store, Sign: sign,
				PlatformNamespaces: []string{tenancy.AnyNamespace}},
		} {
			if err := c.SetupWithManager(mgr); err != nil {
				return err
			}
		}
		return nil
	})
	for name, test := range map[string]func(*testing.T, *hub){
		"http repository":   testHTTPRepository,
		"oci repository":    testOCIRepository,
		"git repository":    testGitRepository,
		"values from":       testValuesFrom,
		"bad chart, values": testBuildFailures,
		"tenancy":           testTenancy,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, h)
		})
	}
}

// cluster registers a Ready cluster with its hub namespace, labelled for one test.
func (h *hub) cluster(t *testing.T, name string) {
	t.Helper()
	h.Namespace(t, fleetv1.ClusterNamespace(name))
	c := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"test": name}}}
	c.Spec.Variables = map[string]string{"region": "eu"}
	h.Create(t, c)
	c.Status.Namespace = fleetv1.ClusterNamespace(name)
	conditions.MarkReady(c, meta.SucceededReason, "heartbeat")
	if err := h.Client.Status().Update(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func release(ns, name, cluster string, chart deliveryv1.HelmChartTemplate) *deliveryv1.HelmRelease {
	return &deliveryv1.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: deliveryv1.HelmReleaseSpec{
			Chart:     chart,
			Interval:  metav1.Duration{Duration: time.Hour},
			Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"test": cluster}}},
		},
	}
}

// waitFor re-reads hr until check holds.
func (h *hub) waitFor(t *testing.T, hr *deliveryv1.HelmRelease, check func(*deliveryv1.HelmRelease) error) {
	t.Helper()
	env.WaitFor(t, h.Client, hr, func(hr *deliveryv1.HelmRelease) error {
		if err := check(hr); err != nil {
			return fmt.Errorf("%w\nconditions: %+v\nstatus: artifact %+v attempted %s", err, hr.Status.Conditions, hr.Status.Artifact, hr.Status.LastAttemptedRevision)
		}
		return nil
	})
}

// packaged: the current generation is packaged as the chart version.
func packaged(version string) func(*deliveryv1.HelmRelease) error {
	return func(hr *deliveryv1.HelmRelease) error {
		if hr.Status.ObservedGeneration != hr.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", hr.Status.ObservedGeneration, hr.Generation)
		}
		if a := hr.Status.Artifact; a == nil || a.Revision != version || hr.Status.LastAppliedRevision != version {
			return fmt.Errorf("artifact %+v, lastAppliedRevision %s; want %s", a, hr.Status.LastAppliedRevision, version)
		}
		return nil
	}
}

func failedWith(reason, msg string) func(*deliveryv1.HelmRelease) error {
	return func(hr *deliveryv1.HelmRelease) error {
		c := apimeta.FindStatusCondition(hr.Status.Conditions, meta.ReadyCondition)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason || !strings.Contains(c.Message, msg) {
			return fmt.Errorf("Ready = %+v, want False/%s with %q", c, reason, msg)
		}
		return nil
	}
}

// files downloads the HelmRelease's artifact.
func files(t *testing.T, hr *deliveryv1.HelmRelease) map[string]string {
	t.Helper()
	return sourceenv.Download(t, hr.Status.Artifact)
}

func values(t *testing.T, files map[string]string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(files[artifact.HelmValuesFile]), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// assignment waits for the cluster's Assignment to carry the HelmRelease's artifact.
func (h *hub) assignment(t *testing.T, hr *deliveryv1.HelmRelease, cluster string) *fleetv1.Assignment {
	t.Helper()
	a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(cluster),
		Name: fleetv1.AssignmentName(deliveryv1.HelmReleaseKind, hr.Namespace, hr.Name)}}
	env.Eventually(t, "assignment "+a.Name, func() error {
		if err := h.Client.Get(context.Background(), keyOf(a), a); err != nil {
			return err
		}
		if a.Spec.Artifact.Digest != hr.Status.Artifact.Digest {
			return fmt.Errorf("assignment has %s, release %s", a.Spec.Artifact.Digest, hr.Status.Artifact.Digest)
		}
		return nil
	})
	return a
}

func keyOf(a *fleetv1.Assignment) types.NamespacedName {
	return types.NamespacedName{Namespace: a.Namespace, Name: a.Name}
}

// testHTTPRepository: the newest chart in the range is packaged with its values, the
// targeted cluster's Assignment carries the Helm settings with every default, signed;
// a new version in range moves the artifact.
func testHTTPRepository(t *testing.T, h *hub) {
	repo := helmrepo.New(t)
	for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
		repo.Add(charts.Simple("app", v))
	}
	ns := h.Namespace(t, "hr-http")
	h.cluster(t, "hr-http")
	src := &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "charts"},
		Spec: sourcev1.HelmRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}}}
	h.Create(t, src)

	hr := release(ns, "web", "hr-http", deliveryv1.HelmChartTemplate{Chart: "app", Version: "^1",
		SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}})
	hr.Spec.TargetNamespace = "apps"
	hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"greeting":"hi","cluster":"${cluster_name}"}`)}
	hr.Spec.Upgrade = &meta.HelmUpgrade{Force: true}
	hr.Spec.DependsOn = []deliveryv1.DependencyReference{{Name: "db"}}
	h.Create(t, hr)
	h.waitFor(t, hr, packaged("1.1.0"))

	got := files(t, hr)
	if !strings.Contains(got["chart/Chart.yaml"], "version: 1.1.0") || got["chart/templates/configmap.yaml"] != charts.ConfigMapTemplate {
		t.Fatalf("artifact files %v: want the chart below chart/", got)
	}
	if diff := cmp.Diff(map[string]any{"greeting": "hi", "cluster": "${cluster_name}"}, values(t, got)); diff != "" {
		t.Errorf("values.yaml (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(hr.Status.LastAttemptedValuesChecksum, "sha256:") {
		t.Errorf("lastAttemptedValuesChecksum %q", hr.Status.LastAttemptedValuesChecksum)
	}

	a := h.assignment(t, hr, "hr-http")
	want := &meta.HelmReleaseSettings{
		ReleaseName: "apps-web", StorageNamespace: "apps", Chart: "app", ChartVersion: "1.1.0",
		MaxHistory: ptr.To[int32](meta.DefaultMaxHistory),
		Install:    &meta.HelmInstall{CRDs: meta.CRDsCreate, Remediation: &meta.InstallRemediation{}},
		Upgrade:    &meta.HelmUpgrade{Force: true, CRDs: meta.CRDsSkip, Remediation: &meta.UpgradeRemediation{Strategy: meta.RemediateRollback}},
		Test:       &meta.HelmTest{Timeout: &metav1.Duration{Duration: helmrelease.DefaultTimeout}},
		Rollback:   &meta.HelmRollback{}, Uninstall: &meta.HelmUninstall{},
		DriftDetection: &meta.HelmDriftDetection{Mode: meta.HelmDriftDisabled},
	}
	if diff := cmp.Diff(want, a.Spec.Helm); diff != "" {
		t.Errorf("helm settings (-want +got):\n%s", diff)
	}
	if a.Spec.TargetNamespace != "apps" || !a.Spec.Prune || a.Spec.Artifact.Revision != "1.1.0" ||
		a.Spec.Timeout == nil || a.Spec.Timeout.Duration != helmrelease.DefaultTimeout {
		t.Errorf("assignment spec %+v", a.Spec)
	}
	if diff := cmp.Diff([]string{"hr." + ns + ".db"}, a.Spec.DependsOn); diff != "" {
		t.Errorf("dependsOn (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{meta.ClusterNameVariable: "hr-http", "region": "eu"}, a.Spec.PostBuild.Substitute); diff != "" {
		t.Errorf("substitution variables (-want +got):\n%s", diff)
	}
	// The signature covers the Helm settings: verified as the agent does, and
	// refused once they are changed.
	if err := artifact.VerifyStatement("hr-http", a, []ed25519.PublicKey{h.pub}); err != nil {
		t.Fatalf("signature: %v", err)
	}
	a.Spec.Helm.StorageNamespace = "kube-system"
	if err := artifact.VerifyStatement("hr-http", a, []ed25519.PublicKey{h.pub}); err == nil {
		t.Fatal("the signature does not cover the Helm settings")
	}

	// A new version in range reaches the release through the repository's index.
	repo.Add(charts.Simple("app", "1.2.0"))
	at := h.RequestReconcile(t, src)
	h.WaitFor(t, src, sourceenv.Handled(at))
	h.waitFor(t, hr, packaged("1.2.0"))
	if a := h.assignment(t, hr, "hr-http"); a.Spec.Helm.ChartVersion != "1.2.0" {
		t.Errorf("assignment chart version %s, want 1.2.0", a.Spec.Helm.ChartVersion)
	}

	// Suspended, the Assignment says so, signed again (the agent releases nothing);
	// resumed, the mark goes.
	suspended := func(want bool) {
		t.Helper()
		h.Update(t, hr, func() { hr.Spec.Suspend = want })
		a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("hr-http"),
			Name: fleetv1.AssignmentName(deliveryv1.HelmReleaseKind, hr.Namespace, hr.Name)}}
		env.Eventually(t, fmt.Sprintf("assignment suspend=%t", want), func() error {
			if err := h.Client.Get(context.Background(), keyOf(a), a); err != nil {
				return err
			}
			if a.Spec.Suspend != want {
				return fmt.Errorf("spec.suspend is %t", a.Spec.Suspend)
			}
			return artifact.VerifyStatement("hr-http", a, []ed25519.PublicKey{h.pub})
		})
	}
	suspended(true)
	suspended(false)
}

// testOCIRepository: a chart pulled from an oci HelmRepository by range.
func testOCIRepository(t *testing.T, h *hub) {
	reg := registry.New(t)
	for _, v := range []string{"0.1.0", "0.2.0", "1.0.0"} {
		reg.PushChart("charts", "app", v, charts.Simple("app", v).Package(t))
	}
	ns := h.Namespace(t, "hr-oci")
	h.cluster(t, "hr-oci")
	h.Create(t, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "charts"},
		Spec: sourcev1.HelmRepositorySpec{URL: reg.URL("charts"), Type: helm.TypeOCI, Interval: metav1.Duration{Duration: time.Hour}}})
	hr := release(ns, "web", "hr-oci", deliveryv1.HelmChartTemplate{Chart: "app", Version: "<1",
		SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}})
	h.Create(t, hr)
	h.waitFor(t, hr, packaged("0.2.0"))
	if got := files(t, hr); !strings.Contains(got["chart/Chart.yaml"], "version: 0.2.0") {
		t.Fatalf("artifact files %v", got)
	}
	if a := h.assignment(t, hr, "hr-oci"); a.Spec.Helm.ReleaseName != "web" || a.Spec.Helm.StorageNamespace != ns {
		t.Errorf("helm settings %+v", a.Spec.Helm)
	}
}

// testGitRepository: a chart at a path of a Git source, with the version its
// Chart.yaml says (spec.chart.version does not apply).
func testGitRepository(t *testing.T, h *hub) {
	srv := gitserver.New(t)
	repo := srv.CreateRepo("fleet")
	repo.Write(charts.Simple("app", "3.1.4").FilesUnder(t, "charts/app/"))
	ns := h.Namespace(t, "hr-git")
	h.cluster(t, "hr-git")
	h.Create(t, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}}})
	hr := release(ns, "web", "hr-git", deliveryv1.HelmChartTemplate{Chart: "./charts/app", Version: "9.9.9",
		SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "fleet"}})
	h.Create(t, hr)
	h.waitFor(t, hr, packaged("3.1.4"))
	got := files(t, hr)
	if !strings.Contains(got["chart/Chart.yaml"], "version: 3.1.4") || got["chart/templates/configmap.yaml"] == "" {
		t.Fatalf("artifact files %v", got)
	}
	for name := range got {
		if name != artifact.HelmValuesFile && !strings.HasPrefix(name, artifact.HelmChartDir+"/") {
			t.Errorf("artifact holds %s, outside the chart", name)
		}
	}
}

// testValuesFrom: ConfigMap and Secret values merge in order, a targetPath sets one
// value, spec.values wins; a change of a ConfigMap moves the artifact; a missing
// object stops the release with a clear reason.
func testValuesFrom(t *testing.T, h *hub) {
	repo := helmrepo.New(t)
	repo.Add(charts.Simple("app", "1.0.0"))
	ns := h.Namespace(t, "hr-values")
	h.cluster(t, "hr-values")
	h.Create(t, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "charts"},
		Spec: sourcev1.HelmRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}}})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "base"},
		Data: map[string]string{"values.yaml": "greeting: from-configmap\nnested:\n  a: 1\n  b: 1\nlist: [1, 2]\n"}}
	h.Create(t, cm)
	h.Secret(t, ns, "secret", map[string]string{
		"override.yaml": "nested:\n  b: 2\n  c: 2\n",
		"password":      "s3cret,with=commas\n",
	})
	hr := release(ns, "web", "hr-values", deliveryv1.HelmChartTemplate{Chart: "app",
		SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}})
	hr.Spec.ValuesFrom = []deliveryv1.ValuesReference{
		{Kind: "ConfigMap", Name: "base"},
		{Kind: "Secret", Name: "secret", ValuesKey: "override.yaml"},
		{Kind: "Secret", Name: "secret", ValuesKey: "password", TargetPath: "auth.password"},
		{Kind: "ConfigMap", Name: "absent", Optional: true},
	}
	hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"nested":{"c":3},"list":[9]}`)}
	h.Create(t, hr)
	h.waitFor(t, hr, packaged("1.0.0"))
	want := map[string]any{
		"greeting": "from-configmap",
		"nested":   map[string]any{"a": float64(1), "b": float64(2), "c": float64(3)},
		"list":     []any{float64(9)},
		"auth":     map[string]any{"password": "s3cret,with=commas"},
	}
	if diff := cmp.Diff(want, values(t, files(t, hr))); diff != "" {
		t.Errorf("merged values (-want +got):\n%s", diff)
	}

	// A ConfigMap change is seen through the valuesFrom watch.
	first := hr.Status.Artifact.Digest
	h.Update(t, cm, func() { cm.Data["values.yaml"] = "greeting: changed\n" })
	h.waitFor(t, hr, func(hr *deliveryv1.HelmRelease) error {
		if hr.Status.Artifact.Digest == first {
			return fmt.Errorf("artifact not rebuilt")
		}
		return nil
	})
	if v := values(t, files(t, hr)); v["greeting"] != "changed" {
		t.Errorf("values after the change: %v", v)
	}

	// A missing object that is not optional: nothing new is handed out.
	kept := hr.Status.Artifact.Digest
	h.Update(t, hr, func() {
		hr.Spec.ValuesFrom = append(hr.Spec.ValuesFrom, deliveryv1.ValuesReference{Kind: "Secret", Name: "missing"})
	})
	h.waitFor(t, hr, failedWith(helmrelease.ValuesNotFoundReason, "Secret missing does not exist"))
	if hr.Status.Artifact.Digest != kept {
		t.Errorf("artifact moved to %s without its values", hr.Status.Artifact.Digest)
	}
	// Its creation wakes the release.
	h.Secret(t, ns, "missing", map[string]string{"values.yaml": "greeting: late\n"})
	h.waitFor(t, hr, packaged("1.0.0"))
	if v := values(t, files(t, hr)); v["greeting"] != "late" {
		t.Errorf("values after the Secret appeared: %v", v)
	}
}

// testBuildFailures: a chart that does not load, a template error and values the
// schema refuses are BuildFailed with Helm's message; the last good artifact and the
// Assignment stay.
func testBuildFailures(t *testing.T, h *hub) {
	good := charts.Simple("app", "1.0.0").With(map[string]string{
		"templates/required.yaml": "{{ if .Values.fail }}{{ fail \"the values ask for failure\" }}{{ end }}\n",
		"values.schema.json":      `{"type":"object","properties":{"replicas":{"type":"integer"}}}`,
	})
	srv := gitserver.New(t)
	repo := srv.CreateRepo("fleet")
	repo.Write(good.FilesUnder(t, "app/"))
	ns := h.Namespace(t, "hr-bad")
	h.cluster(t, "hr-bad")
	src := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}}}
	h.Create(t, src)
	hr := release(ns, "web", "hr-bad", deliveryv1.HelmChartTemplate{Chart: "app",
		SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "fleet"}})
	h.Create(t, hr)
	h.waitFor(t, hr, packaged("1.0.0"))
	kept := hr.Status.Artifact.Digest
	h.assignment(t, hr, "hr-bad")

	keptAll := func(t *testing.T) {
		t.Helper()
		if hr.Status.Artifact.Digest != kept {
			t.Errorf("artifact moved to %s", hr.Status.Artifact.Digest)
		}
		a := h.assignment(t, hr, "hr-bad")
		if a.Spec.Artifact.Digest != kept {
			t.Errorf("assignment moved to %s", a.Spec.Artifact.Digest)
		}
	}
	for _, tc := range []struct {
		name   string
		values string
		msg    string
	}{
		{"template error", `{"fail":true}`, "the values ask for failure"},
		{"schema", `{"replicas":"three"}`, "replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.Update(t, hr, func() { hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(tc.values)} })
			h.waitFor(t, hr, failedWith(meta.BuildFailedReason, tc.msg))
			keptAll(t)
		})
	}
	h.Update(t, hr, func() { hr.Spec.Values = nil })
	h.waitFor(t, hr, packaged("1.0.0"))

	t.Run("chart", func(t *testing.T) {
		// A Chart.yaml without a version does not load.
		repo.Write(map[string]string{"app/Chart.yaml": "apiVersion: v2\nname: app\n"})
		at := h.RequestReconcile(t, src)
		h.WaitFor(t, src, sourceenv.Handled(at))
		h.waitFor(t, hr, failedWith(meta.BuildFailedReason, "invalid chart"))
		keptAll(t)
		h.WaitForEvent(t, hr, "Warning/"+meta.BuildFailedReason)
	})
}

// testTenancy: a tenant's HelmRelease may keep its release history only in the
// tenant's target namespaces; refused, it is Stalled and nothing is fetched or
// assigned.
func testTenancy(t *testing.T, h *hub) {
	ns := h.Namespace(t, "hr-tenant")
	h.cluster(t, "hr-tenant")
	h.Create(t, &tenancyv1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "hr-team"},
		Spec: tenancyv1.TenantSpec{Namespaces: []string{ns}, TargetNamespaces: []string{"team-apps"},
			ClusterSelector: &metav1.LabelSelector{}}})
	hr := release(ns, "web", "hr-tenant", deliveryv1.HelmChartTemplate{Chart: "app",
		SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}})
	hr.Spec.TargetNamespace = "team-apps"
	hr.Spec.StorageNamespace = "kube-system"
	h.Create(t, hr)
	h.waitFor(t, hr, func(hr *deliveryv1.HelmRelease) error {
		c := apimeta.FindStatusCondition(hr.Status.Conditions, meta.StalledCondition)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != tenancyv1.TargetNamespaceNotAllowedReason ||
			!strings.Contains(c.Message, "storageNamespace kube-system") {
			return fmt.Errorf("Stalled = %+v, want True/%s naming the storage namespace", c, tenancyv1.TargetNamespaceNotAllowedReason)
		}
		return nil
	})
	if hr.Status.Artifact != nil || hr.Status.LastAttemptedRevision != "" {
		t.Errorf("a refused release was resolved: %+v", hr.Status)
	}
	var list fleetv1.AssignmentList
	if err := h.Client.List(context.Background(), &list, ctrlclient.InNamespace(fleetv1.ClusterNamespace("hr-tenant"))); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("a refused release was assigned: %d Assignments", len(list.Items))
	}
}
