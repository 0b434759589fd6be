package observe

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/hub/fleet"
	"github.com/flotilla-dev/flotilla/hub/manager"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

func configMap(ns, name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n  value: %q\n", name, ns, value)
}

// TestMetricsScrapedFromHubAndAgent runs a one-spoke fleet whose hub and agent
// serve metrics as installed (HTTPS, authenticated and authorised by their API
// servers), takes a Kustomization through an apply, a drift correction and a prune,
// and scrapes both.
//
// Hub and agent run in this one process, so each endpoint also shows the other's
// series; every check reads the series from the endpoint of the side that owns them.
func TestMetricsScrapedFromHubAndAgent(t *testing.T) {
	ctx := context.Background()
	hubAddr, agentAddr := env.FreeAddr(t), env.FreeAddr(t)
	f := fleetenv.StartFleet(t, 1, fleetenv.With(func(o *devenv.Options) {
		o.Hub = func(h *manager.Options) { h.MetricsAddr = hubAddr }
		o.Agent = func(a *agent.Options) {
			a.MetricsAddr = agentAddr
			// A drift check every 2 s, so the correction below comes quickly.
			a.ResyncInterval = 2 * time.Second
		}
	}))
	hub, spoke := f.HubClient(), f.SpokeClient("spoke-1")
	hubURL, agentURL := "https://"+hubAddr+"/metrics", "https://"+agentAddr+"/metrics"

	// The metrics servers make their self-signed certificates as they start, which
	// may take a moment after the Cluster is Ready.
	for _, url := range []string{hubURL, agentURL} {
		env.Eventually(t, url+" listening", func() error {
			_, _, err := env.Scrape(url, "")
			return err
		})
	}

	t.Run("a scrape needs a token allowed to get /metrics", func(t *testing.T) {
		for _, c := range []struct {
			name, url string
			cl        client.Client
		}{{"hub", hubURL, hub}, {"agent", agentURL, spoke}} {
			if _, code, err := env.Scrape(c.url, ""); err != nil || code != http.StatusUnauthorized {
				t.Errorf("%s without a token: %d %v, want 401", c.name, code, err)
			}
			if _, code, err := env.Scrape(c.url, env.MetricsToken(t, c.cl, false)); err != nil || code != http.StatusForbidden {
				t.Errorf("%s with a token not bound to %s: %d %v, want 403", c.name, env.MetricsReaderRole, code, err)
			}
		}
	})
	hubToken, agentToken := env.MetricsToken(t, hub, true), env.MetricsToken(t, spoke, true)

	// A group of the one spoke: its membership and health are Events.
	group := &fleetv1.ClusterGroup{ObjectMeta: metav1.ObjectMeta{Name: "observed"},
		Spec: fleetv1.ClusterGroupSpec{ClusterSelector: metav1.LabelSelector{MatchLabels: map[string]string{"name": "spoke-1"}}}}
	if err := hub.Create(ctx, group); err != nil {
		t.Fatal(err)
	}

	const appNS = "observed-app"
	repo := gitserver.New(t).CreateRepo("app")
	repo.Write(map[string]string{
		"deploy/ns.yaml":   "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + appNS + "\n",
		"deploy/kept.yaml": configMap(appNS, "kept", "one"),
		"deploy/gone.yaml": configMap(appNS, "gone", "one"),
	})
	src := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}}}
	if err := hub.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	ks := &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path:      "./deploy", Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			ApplySettings: meta.ApplySettings{DriftDetection: &meta.DriftDetection{Mode: meta.DriftCorrect}},
			Placement:     deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "spoke-1"}}},
		}}
	if err := hub.Create(ctx, ks); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
		if k.Status.Clusters.Ready != 1 {
			return fmt.Errorf("clusters %+v", k.Status.Clusters)
		}
		return nil
	})

	// Drift: a hand edit on the spoke is corrected at the next resync.
	cm := &corev1.ConfigMap{}
	if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "kept"}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = "by hand"
	if err := spoke.Update(ctx, cm, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	env.Eventually(t, "the drift corrected", func() error {
		if err := spoke.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
			return err
		}
		if cm.Data["value"] != "one" {
			return fmt.Errorf("value %q", cm.Data["value"])
		}
		return nil
	})

	// Prune: a commit drops one ConfigMap.
	commit := repo.Remove("deploy/gone.yaml")
	patch := client.MergeFrom(src.DeepCopy())
	src.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: time.Now().Format(time.RFC3339Nano)}
	if err := hub.Patch(ctx, src, patch); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
		if !strings.HasSuffix(k.Status.LastAppliedRevision, commit) || k.Status.Clusters.Ready != 1 {
			return fmt.Errorf("revision %s, clusters %+v", k.Status.LastAppliedRevision, k.Status.Clusters)
		}
		return nil
	})

	scrape := func(url, token string) env.Samples {
		t.Helper()
		s, code, err := env.Scrape(url, token)
		if err != nil || code != http.StatusOK {
			t.Fatalf("scrape %s: %d %v", url, code, err)
		}
		return s
	}
	// want checks that the named series exist and that their sum is in [lo, hi].
	want := func(s env.Samples, lo, hi float64, name string, labels ...string) {
		t.Helper()
		got := s.Get(name, labels...)
		if len(got) == 0 {
			t.Errorf("no %s%v", name, labels)
			return
		}
		if v := got.Sum(); v < lo || v > hi {
			t.Errorf("%s%v = %v, want in [%v, %v]", name, labels, v, lo, hi)
		}
	}

	env.Eventually(t, "agent metrics", func() error {
		s := scrape(agentURL, agentToken)
		for _, name := range []string{agent.PrunedObjectsName, agent.DriftCorrectionsName} {
			if s.Get(name).Sum() < 1 {
				return fmt.Errorf("%s is %v", name, s.Get(name).Sum())
			}
		}
		return nil
	})
	a := scrape(agentURL, agentToken)
	want(a, 1, 1e9, agent.ApplyDurationName+"_count", "result", "success")
	want(a, 1e-9, 1e9, agent.ApplyDurationName+"_sum", "result", "success")
	want(a, 1, 1e9, agent.PruneDurationName+"_count", "result", "success")
	want(a, 1, 1e9, agent.PrunedObjectsName)
	want(a, 1, 1e9, agent.DriftCorrectionsName)
	want(a, 1, 1, agent.AgentInfoName)
	want(a, 1, 1e9, "controller_runtime_reconcile_time_seconds_count", "controller", "assignment")

	h := scrape(hubURL, hubToken)
	d := []string{"kind", deliveryv1.KustomizationKind, "namespace", "default", "name", "app"}
	want(h, 1, 1, hubmetrics.DeploymentClustersName, append(d, "state", "targeted")...)
	want(h, 1, 1, hubmetrics.DeploymentClustersName, append(d, "state", "applied")...)
	want(h, 1, 1, hubmetrics.DeploymentClustersName, append(d, "state", "ready")...)
	want(h, 0, 0, hubmetrics.DeploymentClustersName, append(d, "state", "failed")...)
	// The heartbeat is renewed every 10 s; the grace is 40 s.
	want(h, 0, 40, hubmetrics.ClusterHeartbeatAgeName, "cluster", "spoke-1")
	want(h, 1, 1, hubmetrics.ClusterReadyName, "cluster", "spoke-1")
	want(h, 1, 100, hubmetrics.ClusterAssignmentsName, "cluster", "spoke-1", "state", "total")
	want(h, 2, 1e9, hubmetrics.BuildsName, "kind", deliveryv1.KustomizationKind, "result", "success")
	want(h, 2, 1e9, hubmetrics.BuildDurationName+"_count", "kind", deliveryv1.KustomizationKind)
	want(h, 1, 1e9, hubmetrics.ArtifactBytesServedName)
	want(h, 2, 1e9, hubmetrics.ArtifactRequestsName, "code", "200")
	want(h, 1, 1e9, "controller_runtime_reconcile_time_seconds_count", "controller", "cluster")
	want(h, 1, 1e9, "flotilla_source_fetch_duration_seconds_count", "kind", sourcev1.GitRepositoryKind)

	t.Run("a ClusterGroup records membership and health", func(t *testing.T) {
		env.Eventually(t, "Events on the group", func() error {
			var list eventsv1.EventList
			if err := hub.List(ctx, &list); err != nil {
				return err
			}
			reasons := map[string]bool{}
			for _, e := range list.Items {
				if e.Regarding.Kind == "ClusterGroup" && e.Regarding.Name == group.Name {
					reasons[e.Reason] = true
				}
			}
			if !reasons[fleet.MembersChangedReason] || !reasons[meta.SucceededReason] {
				return fmt.Errorf("reasons %v", reasons)
			}
			return nil
		})
	})

	t.Run("a deleted deployment leaves no series", func(t *testing.T) {
		if err := hub.Delete(ctx, ks); err != nil {
			t.Fatal(err)
		}
		env.Eventually(t, "series gone", func() error {
			if s := scrape(hubURL, hubToken).Get(hubmetrics.DeploymentClustersName, d...); len(s) > 0 {
				return fmt.Errorf("%d series left", len(s))
			}
			return nil
		})
	})
}
