package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/charts"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/helmrepo"
	"github.com/flotilla-dev/flotilla/test/registry"
)

// helmOn is Helm itself on one spoke, as its admin runs it (`helm list`, `helm
// history`): it reads the release Secrets in namespace ns.
func helmOn(t testing.TB, f *fleetenv.Fleet, spoke, ns string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	kubeconfig := f.Kubeconfig(spoke)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &ns
	cfg := &action.Configuration{}
	if err := cfg.Init(flags, ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatalf("helm on %s: %v", spoke, err)
	}
	return cfg
}

// history is the release's history on the spoke, oldest first.
func history(cfg *action.Configuration, name string) ([]*release.Release, error) {
	h := action.NewHistory(cfg)
	h.Max = 256
	rels, err := h.Run(name)
	if err != nil {
		return nil, err
	}
	// Helm returns them in storage order; sort by revision.
	slices.SortFunc(rels, func(a, b *release.Release) int { return a.Version - b.Version })
	return rels, nil
}

// wantUninstalled waits until the spoke holds no history of release name.
func wantUninstalled(t *testing.T, cfg *action.Configuration, spoke, name string) {
	t.Helper()
	env.Eventually(t, "release "+name+" gone from "+spoke, func() error {
		rels, err := history(cfg, name)
		if err != nil && !strings.Contains(err.Error(), "not found") {
			return err
		}
		if len(rels) > 0 {
			return fmt.Errorf("history is %s", describe(rels))
		}
		return nil
	})
}

// describe says what a history holds, for messages: "1:1.0.0:superseded 2:1.1.0:deployed".
func describe(rels []*release.Release) string {
	parts := make([]string, len(rels))
	for i, r := range rels {
		v := "?"
		if r.Chart != nil && r.Chart.Metadata != nil {
			v = r.Chart.Metadata.Version
		}
		parts[i] = fmt.Sprintf("%d:%s:%s", r.Version, v, r.Info.Status)
	}
	return strings.Join(parts, " ")
}

// wantLast waits until the release's last revision on the spoke is deployed with
// chart version v, and returns the history.
func wantLast(t *testing.T, cfg *action.Configuration, spoke, name, version string) []*release.Release {
	t.Helper()
	var rels []*release.Release
	env.Eventually(t, fmt.Sprintf("release %s deployed with chart %s on %s", name, version, spoke), func() error {
		var err error
		if rels, err = history(cfg, name); err != nil {
			return err
		}
		if len(rels) == 0 {
			return fmt.Errorf("no release yet")
		}
		last := rels[len(rels)-1]
		if last.Info.Status != release.StatusDeployed || last.Chart.Metadata.Version != version {
			return fmt.Errorf("history is %s", describe(rels))
		}
		return nil
	})
	return rels
}

// chartData reads the ConfigMap charts.ConfigMapTemplate renders.
func chartData(tg target, name string) (map[string]string, error) {
	var cm corev1.ConfigMap
	if err := tg.c.Get(context.Background(), types.NamespacedName{Namespace: tg.ns, Name: name}, &cm); err != nil {
		return nil, err
	}
	return cm.Data, nil
}

func (tg target) wantData(t *testing.T, name string, want map[string]string) {
	t.Helper()
	env.Eventually(t, fmt.Sprintf("ConfigMap %s/%s on %s", tg.ns, name, tg.name), func() error {
		got, err := chartData(tg, name)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(want, got); diff != "" {
			return fmt.Errorf("data (-want +got):\n%s", diff)
		}
		return nil
	})
}

func values(t testing.TB, v map[string]any) *apiextensionsv1.JSON {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &apiextensionsv1.JSON{Raw: raw}
}

func helmRepository(ns, name, url, typ string) *sourcev1.HelmRepository {
	return &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       sourcev1.HelmRepositorySpec{URL: url, Type: typ, Interval: metav1.Duration{Duration: time.Hour}},
	}
}

// helmReleaseAssignment is the Assignment of HelmRelease ns/name in cluster's namespace.
func helmReleaseAssignment(cluster, ns, name string) *fleetv1.Assignment {
	return &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(cluster),
		Name: fleetv1.AssignmentName(deliveryv1.HelmReleaseKind, ns, name)}}
}

func wantHelmCounts(t *testing.T, c client.Client, hr *deliveryv1.HelmRelease, want meta.ClusterCounts, versions []meta.VersionCount) {
	t.Helper()
	env.WaitFor(t, c, hr, func(h *deliveryv1.HelmRelease) error {
		if diff := cmp.Diff(want, h.Status.Clusters); diff != "" {
			return fmt.Errorf("status.clusters (-want +got):\n%s", diff)
		}
		if versions != nil {
			if diff := cmp.Diff(versions, h.Status.ChartVersions); diff != "" {
				return fmt.Errorf("status.chartVersions (-want +got):\n%s", diff)
			}
		}
		return nil
	})
}

// reindex makes the hub read a chart repository's index again, now.
func reindex(t *testing.T, c client.Client, repo *sourcev1.HelmRepository) {
	t.Helper()
	token := requestReconcile(t, c, repo)
	env.WaitFor(t, c, repo, func(r *sourcev1.HelmRepository) error {
		if r.Status.LastHandledReconcileAt != token {
			return fmt.Errorf("reconcile %s not handled yet", token)
		}
		return nil
	})
}

// TestHelmReleaseAcrossFleet walks one HelmRelease from an HTTP chart repository
// through its life on three spokes: install with per-cluster values, a new chart
// version within the range, new values, an upgrade that fails on the spokes and is
// rolled back, a chart and values the hub refuses, and the uninstall everywhere.
func TestHelmReleaseAcrossFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, ns, appNS := sharedFleet(t, "helm")
	hub := f.HubClient()
	spokes := []string{"spoke-1", "spoke-2", "spoke-3"}

	charts1 := helmrepo.New(t)
	charts1.Add(charts.Simple("hello", "1.0.0"))
	repo := helmRepository(ns, "charts", charts1.URL(), "")
	if err := hub.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	hr := &deliveryv1.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello"},
		Spec: deliveryv1.HelmReleaseSpec{
			Chart: deliveryv1.HelmChartTemplate{Chart: "hello", Version: "1.x",
				SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}},
			ReleaseName:     "hello",
			TargetNamespace: appNS,
			Interval:        metav1.Duration{Duration: time.Hour},
			Install:         &meta.HelmInstall{CreateNamespace: true},
			Upgrade: &meta.HelmUpgrade{Remediation: &meta.UpgradeRemediation{
				Retries: 1, Strategy: meta.RemediateRollback, RemediateLastFailure: true}},
			Values:    values(t, map[string]any{"greeting": "hi", "cluster": "${cluster_name}/${region}"}),
			Placement: byName(spokes...),
		},
	}
	if err := hub.Create(ctx, hr); err != nil {
		t.Fatal(err)
	}

	data := func(version, greeting, cluster string) map[string]string {
		return map[string]string{"chartVersion": version, "greeting": greeting, "cluster": cluster}
	}

	t.Run("installs on every targeted spoke with its own values", func(t *testing.T) {
		for _, s := range spokes {
			spokeTarget(f, s, appNS).wantData(t, "hello", data("1.0.0", "hi", s+"/"+regions[s]))
			rels := wantLast(t, helmOn(t, f, s, appNS), s, "hello", "1.0.0")
			if len(rels) != 1 {
				t.Fatalf("history on %s is %s, want one revision", s, describe(rels))
			}
		}
		wantHelmCounts(t, hub, hr, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, []meta.VersionCount{{Version: "1.0.0", Clusters: 3}})
		env.WaitReady(t, hub, hr)
		a := helmReleaseAssignment("spoke-1", ns, "hello")
		if err := hub.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			t.Fatal(err)
		}
		if a.Spec.Helm == nil || a.Spec.Helm.ReleaseName != "hello" || a.Spec.Helm.StorageNamespace != appNS {
			t.Fatalf("assignment spec.helm %+v, want release hello stored in %s", a.Spec.Helm, appNS)
		}
		if r := a.Status.Release; r == nil || r.Revision != 1 || r.ChartVersion != "1.0.0" || r.Status != string(release.StatusDeployed) {
			t.Fatalf("assignment status.release %+v, want revision 1 of 1.0.0 deployed", r)
		}
	})

	t.Run("upgrades to the newest version in range", func(t *testing.T) {
		charts1.Add(charts.Simple("hello", "1.1.0"))
		charts1.Add(charts.Simple("hello", "2.0.0")) // out of range
		reindex(t, hub, repo)
		for _, s := range spokes {
			spokeTarget(f, s, appNS).wantData(t, "hello", data("1.1.0", "hi", s+"/"+regions[s]))
			if rels := wantLast(t, helmOn(t, f, s, appNS), s, "hello", "1.1.0"); len(rels) != 2 {
				t.Fatalf("history on %s is %s, want two revisions", s, describe(rels))
			}
		}
		wantHelmCounts(t, hub, hr, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, []meta.VersionCount{{Version: "1.1.0", Clusters: 3}})
	})

	t.Run("upgrades to new values", func(t *testing.T) {
		patchHelmRelease(t, hub, hr, func(h *deliveryv1.HelmRelease) {
			h.Spec.Values = values(t, map[string]any{"greeting": "hey", "cluster": "${cluster_name}"})
		})
		for _, s := range spokes {
			spokeTarget(f, s, appNS).wantData(t, "hello", data("1.1.0", "hey", s))
			if rels := wantLast(t, helmOn(t, f, s, appNS), s, "hello", "1.1.0"); len(rels) != 3 {
				t.Fatalf("history on %s is %s, want three revisions", s, describe(rels))
			}
		}
		wantHelmCounts(t, hub, hr, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, nil)
	})

	t.Run("a failed upgrade is rolled back and named on the hub", func(t *testing.T) {
		// The spokes' API servers refuse 1.2.0's second ConfigMap: Helm's upgrade fails
		// there, after the hub rendered the chart without complaint.
		charts1.Add(charts.Simple("hello", "1.2.0").With(charts.Broken()))
		reindex(t, hub, repo)
		env.WaitFor(t, hub, hr, func(h *deliveryv1.HelmRelease) error {
			if h.Status.Clusters.Failed != 3 || len(h.Status.Failures) != 3 {
				return fmt.Errorf("status.clusters %+v, failures %+v", h.Status.Clusters, h.Status.Failures)
			}
			for _, fl := range h.Status.Failures {
				if !strings.Contains(fl.Message, "not a valid key") {
					return fmt.Errorf("failure of %s does not say what is wrong: %s", fl.Cluster, fl.Message)
				}
			}
			return nil
		})
		for _, s := range spokes {
			cfg := helmOn(t, f, s, appNS)
			rels := wantLast(t, cfg, s, "hello", "1.1.0")
			failed := 0
			for _, r := range rels {
				if r.Info.Status == release.StatusFailed && r.Chart.Metadata.Version == "1.2.0" {
					failed++
				}
			}
			if failed == 0 {
				t.Fatalf("history on %s is %s: no failed 1.2.0 upgrade before the rollback", s, describe(rels))
			}
			// The running release is the last good one, values included.
			spokeTarget(f, s, appNS).wantData(t, "hello", data("1.1.0", "hey", s))
		}
		a := helmReleaseAssignment("spoke-2", ns, "hello")
		env.WaitFor(t, hub, a, func(a *fleetv1.Assignment) error {
			if conditions.IsTrue(a, meta.ReadyCondition) {
				return fmt.Errorf("Ready is True though 1.2.0 does not run")
			}
			if r := a.Status.Release; r == nil || !strings.Contains(r.LastAction, "roll") {
				return fmt.Errorf("status.release %+v does not tell of the rollback", r)
			}
			return nil
		})
	})

	t.Run("a good version after the failure is released", func(t *testing.T) {
		charts1.Add(charts.Simple("hello", "1.3.0").With(map[string]string{
			"values.schema.json": `{"type":"object","properties":{"greeting":{"type":"string"}}}`,
		}))
		reindex(t, hub, repo)
		for _, s := range spokes {
			spokeTarget(f, s, appNS).wantData(t, "hello", data("1.3.0", "hey", s))
		}
		wantHelmCounts(t, hub, hr, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, []meta.VersionCount{{Version: "1.3.0", Clusters: 3}})
		env.WaitReady(t, hub, hr)
	})

	t.Run("values the chart refuses never leave the hub", func(t *testing.T) {
		patchHelmRelease(t, hub, hr, func(h *deliveryv1.HelmRelease) {
			h.Spec.Values = values(t, map[string]any{"greeting": map[string]any{"not": "a string"}})
		})
		env.WaitFor(t, hub, hr, func(h *deliveryv1.HelmRelease) error {
			ready := conditions.Get(h, meta.ReadyCondition)
			if ready == nil || ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, "greeting") {
				return fmt.Errorf("Ready is %+v, want False naming the value", ready)
			}
			return nil
		})
		for _, s := range spokes {
			got, err := chartData(spokeTarget(f, s, appNS), "hello")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(data("1.3.0", "hey", s), got); diff != "" {
				t.Fatalf("the running release on %s changed (-want +got):\n%s", s, diff)
			}
		}
		patchHelmRelease(t, hub, hr, func(h *deliveryv1.HelmRelease) {
			h.Spec.Values = values(t, map[string]any{"greeting": "hey", "cluster": "${cluster_name}"})
		})
		env.WaitReady(t, hub, hr)
	})

	t.Run("a cluster that leaves the placement is uninstalled", func(t *testing.T) {
		patchHelmRelease(t, hub, hr, func(h *deliveryv1.HelmRelease) { h.Spec.Placement = byName("spoke-1", "spoke-2") })
		wantUninstalled(t, helmOn(t, f, "spoke-3", appNS), "spoke-3", "hello")
		wantLast(t, helmOn(t, f, "spoke-1", appNS), "spoke-1", "hello", "1.3.0")
		wantHelmCounts(t, hub, hr, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, []meta.VersionCount{{Version: "1.3.0", Clusters: 2}})
		spokes = spokes[:2]
	})

	// While a chart or values fail to build, nothing changes on the clusters: not the
	// release, and not the placement either (the last good artifact is not combined
	// with a newer spec).
	t.Run("a chart that does not render never leaves the hub", func(t *testing.T) {
		charts1.Add(charts.Simple("hello", "1.4.0").With(map[string]string{"templates/bad.yaml": "{{ .Values.greeting "}))
		reindex(t, hub, repo)
		env.WaitFor(t, hub, hr, func(h *deliveryv1.HelmRelease) error {
			ready := conditions.Get(h, meta.ReadyCondition)
			if ready == nil || ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, "bad.yaml") {
				return fmt.Errorf("Ready is %+v, want False naming the broken template", ready)
			}
			if h.Status.LastAppliedRevision != "1.3.0" {
				return fmt.Errorf("lastAppliedRevision %q, want 1.3.0 kept", h.Status.LastAppliedRevision)
			}
			return nil
		})
		for _, s := range spokes {
			wantLast(t, helmOn(t, f, s, appNS), s, "hello", "1.3.0")
		}
	})

	t.Run("deleting uninstalls everywhere", func(t *testing.T) {
		if err := hub.Delete(ctx, hr); err != nil {
			t.Fatal(err)
		}
		for _, s := range spokes {
			wantUninstalled(t, helmOn(t, f, s, appNS), s, "hello")
			if _, err := chartData(spokeTarget(f, s, appNS), "hello"); !apierrors.IsNotFound(err) {
				t.Fatalf("ConfigMap hello still on %s (err=%v)", s, err)
			}
		}
	})
}

func patchHelmRelease(t *testing.T, c client.Client, hr *deliveryv1.HelmRelease, change func(*deliveryv1.HelmRelease)) {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(hr), hr); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(hr.DeepCopy())
	change(hr)
	if err := c.Patch(context.Background(), hr, patch); err != nil {
		t.Fatal(err)
	}
}

// TestHelmReleaseSources releases charts from an OCI registry (a HelmRepository of
// type oci) and from a folder of a Git repository, the latter with CRDs of its own
// and an object of the kind they define.
func TestHelmReleaseSources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, ns, appNS := sharedFleet(t, "helmsrc")
	hub := f.HubClient()

	reg := registry.New(t)
	reg.PushChart("charts", "hello", "0.1.0", charts.Simple("hello", "0.1.0").Package(t))
	reg.PushChart("charts", "hello", "0.1.3", charts.Simple("hello", "0.1.3").Package(t))
	reg.PushChart("charts", "hello", "0.2.0", charts.Simple("hello", "0.2.0").Package(t))
	if err := hub.Create(ctx, helmRepository(ns, "oci", reg.URL("charts"), "oci")); err != nil {
		t.Fatal(err)
	}

	git := gitserver.New(t)
	repo := git.CreateRepo("platform")
	crdChart := charts.Simple("widgets", "3.0.0").
		With(charts.CRD("example.flotilla.dev", "Widget", "widgets")).
		With(map[string]string{"templates/widget.yaml": "apiVersion: example.flotilla.dev/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  size: 3\n"})
	repo.Write(crdChart.FilesUnder(t, "charts/widgets/"))
	if err := hub.Create(ctx, &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "platform"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		t.Fatal(err)
	}

	create := func(name, chart, version, kind, source, spoke string) *deliveryv1.HelmRelease {
		hr := &deliveryv1.HelmRelease{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: deliveryv1.HelmReleaseSpec{
				Chart: deliveryv1.HelmChartTemplate{Chart: chart, Version: version,
					SourceRef: deliveryv1.ChartSourceReference{Kind: kind, Name: source}},
				ReleaseName: name, TargetNamespace: appNS, Interval: metav1.Duration{Duration: time.Hour},
				Install:   &meta.HelmInstall{CreateNamespace: true},
				Placement: byName(spoke),
			},
		}
		if err := hub.Create(ctx, hr); err != nil {
			t.Fatal(err)
		}
		return hr
	}

	t.Run("from an OCI registry", func(t *testing.T) {
		hr := create("from-oci", "hello", "~0.1", sourcev1.HelmRepositoryKind, "oci", "spoke-1")
		spokeTarget(f, "spoke-1", appNS).wantData(t, "from-oci", map[string]string{"chartVersion": "0.1.3", "greeting": "hello", "cluster": ""})
		wantHelmCounts(t, hub, hr, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, []meta.VersionCount{{Version: "0.1.3", Clusters: 1}})
	})

	t.Run("from a Git repository, with CRDs", func(t *testing.T) {
		hr := create("from-git", "./charts/widgets", "", sourcev1.GitRepositoryKind, "platform", "spoke-2")
		wantLast(t, helmOn(t, f, "spoke-2", appNS), "spoke-2", "from-git", "3.0.0")
		wantHelmCounts(t, hub, hr, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, []meta.VersionCount{{Version: "3.0.0", Clusters: 1}})
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		if err := f.SpokeClient("spoke-2").Get(ctx, types.NamespacedName{Name: "widgets.example.flotilla.dev"}, crd); err != nil {
			t.Fatalf("the chart's CRD on spoke-2: %v", err)
		}
		widget := &unstructured.Unstructured{}
		widget.SetAPIVersion("example.flotilla.dev/v1")
		widget.SetKind("Widget")
		if err := f.SpokeClient("spoke-2").Get(ctx, types.NamespacedName{Namespace: appNS, Name: "from-git"}, widget); err != nil {
			t.Fatalf("the chart's Widget on spoke-2: %v", err)
		}
	})
}

// TestHelmReleaseAgentKilled leaves a release as an agent killed in the middle of an
// upgrade leaves it (its last revision pending-upgrade: Helm's own lock), and shows
// the agent that starts next recovers it without help: no "another operation is in
// progress" for ever.
func TestHelmReleaseAgentKilled(t *testing.T) {
	ctx := context.Background()
	f, ns, appNS := exclusiveFleet(t, "helmkill")
	hub := f.HubClient()
	const spoke = "spoke-2"

	repoServer := helmrepo.New(t)
	repoServer.Add(charts.Simple("hello", "1.0.0"))
	repo := helmRepository(ns, "charts", repoServer.URL(), "")
	if err := hub.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	hr := &deliveryv1.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello"},
		Spec: deliveryv1.HelmReleaseSpec{
			Chart: deliveryv1.HelmChartTemplate{Chart: "hello",
				SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}},
			ReleaseName: "hello", TargetNamespace: appNS, Interval: metav1.Duration{Duration: time.Hour},
			Install:   &meta.HelmInstall{CreateNamespace: true},
			Placement: byName(spoke),
		},
	}
	if err := hub.Create(ctx, hr); err != nil {
		t.Fatal(err)
	}
	cfg := helmOn(t, f, spoke, appNS)
	wantLast(t, cfg, spoke, "hello", "1.0.0")

	// The agent dies mid-upgrade: what it leaves is revision 2, pending-upgrade.
	f.StopAgent(spoke)
	last, err := cfg.Releases.Last("hello")
	if err != nil {
		t.Fatal(err)
	}
	pending := *last
	info := *last.Info
	info.Status = release.StatusPendingUpgrade
	info.Description = "Preparing upgrade"
	pending.Info = &info
	pending.Version = last.Version + 1
	if err := cfg.Releases.Create(&pending); err != nil {
		t.Fatal(err)
	}
	up := action.NewUpgrade(cfg)
	if _, err := up.Run("hello", last.Chart, last.Config); err == nil || !strings.Contains(err.Error(), "another operation") {
		t.Fatalf("helm upgrade by hand on the stuck release: %v, want Helm's 'another operation is in progress'", err)
	}

	// A new version arrives while the agent is away; the next agent releases it.
	repoServer.Add(charts.Simple("hello", "1.1.0"))
	reindex(t, hub, repo)
	f.StartAgent(spoke)
	rels := wantLast(t, cfg, spoke, "hello", "1.1.0")
	for _, r := range rels {
		if r.Info.Status.IsPending() {
			t.Fatalf("history on %s still holds a pending revision: %s", spoke, describe(rels))
		}
	}
	spokeTarget(f, spoke, appNS).wantData(t, "hello", map[string]string{"chartVersion": "1.1.0", "greeting": "hello", "cluster": ""})
	env.WaitReady(t, hub, hr)
}

// TestHelmReleaseTests runs a chart's test hooks on a spoke whose pods run (kwok):
// a failing test fails the release unless ignoreFailures says otherwise.
func TestHelmReleaseTests(t *testing.T) {
	ctx := context.Background()
	f, ns, appNS := exclusiveFleet(t, "helmtest")
	hub := f.HubClient()
	const spoke = "spoke-3"
	env.StartNodes(t, f.Spoke(spoke))

	repoServer := helmrepo.New(t)
	repoServer.Add(charts.Simple("passing", "1.0.0").With(charts.TestHook("Succeeded")))
	repoServer.Add(charts.Simple("failing", "1.0.0").With(charts.TestHook("Failed")))
	if err := hub.Create(ctx, helmRepository(ns, "charts", repoServer.URL(), "")); err != nil {
		t.Fatal(err)
	}
	create := func(name, chart string, ignore bool) *deliveryv1.HelmRelease {
		hr := &deliveryv1.HelmRelease{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: deliveryv1.HelmReleaseSpec{
				Chart: deliveryv1.HelmChartTemplate{Chart: chart,
					SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}},
				ReleaseName: name, TargetNamespace: appNS, Interval: metav1.Duration{Duration: time.Hour},
				Install:   &meta.HelmInstall{CreateNamespace: true},
				Test:      &meta.HelmTest{Enable: true, IgnoreFailures: ignore},
				Placement: byName(spoke),
			},
		}
		if err := hub.Create(ctx, hr); err != nil {
			t.Fatal(err)
		}
		return hr
	}
	passing := create("passing", "passing", false)
	failing := create("failing", "failing", false)
	ignored := create("ignored", "failing", true)

	env.WaitReady(t, hub, passing)
	env.WaitReady(t, hub, ignored)
	// Installed, but its test failed: applied and failed, not ready.
	wantHelmCounts(t, hub, failing, meta.ClusterCounts{Targeted: 1, Applied: 1, Failed: 1}, nil)
	env.WaitFor(t, hub, failing, func(h *deliveryv1.HelmRelease) error {
		if len(h.Status.Failures) != 1 || !strings.Contains(strings.ToLower(h.Status.Failures[0].Message), "test") {
			return fmt.Errorf("failures %+v do not name the failed test", h.Status.Failures)
		}
		return nil
	})
	a := helmReleaseAssignment(spoke, ns, "ignored")
	if err := hub.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
		t.Fatal(err)
	}
	if ready := conditions.Get(a, meta.ReadyCondition); ready == nil || !strings.Contains(strings.ToLower(ready.Message), "test") {
		t.Fatalf("Ready of the release whose failed test is ignored is %+v: it should still tell of the failure", ready)
	}
}
