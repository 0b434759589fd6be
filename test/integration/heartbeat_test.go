package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/test/fleetenv"

	coordinationv1 "k8s.io/api/coordination/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// TestSilentClusterShowsInRollups stops one agent and checks that its Cluster, the
// deployment it runs and its group all say so within the heartbeat grace period.
func TestSilentClusterShowsInRollups(t *testing.T) {
	t.Parallel()
	const grace = 3 * time.Second
	ctx := context.Background()
	fleet := fleetenv.StartFleet(t, 2, fleetenv.WithHeartbeat(time.Second, grace))
	hub := fleet.HubClient()

	repo := gitserver.New(t).CreateRepo("hb")
	rev := repo.Write(map[string]string{"app/a.yaml": configMap(appNS, "a", "one"), "app/ns.yaml": namespace(appNS)})
	group := &fleetv1.ClusterGroup{ObjectMeta: metav1.ObjectMeta{Name: "everyone"}}
	objs := []client.Object{
		group,
		&sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hb"},
			Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}}},
		&deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hb"},
			Spec: deliveryv1.KustomizationSpec{
				SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "hb"}, Path: "app",
				Interval:  metav1.Duration{Duration: time.Hour},
				Placement: deliveryv1.Placement{ClusterGroups: []string{"everyone"}},
			}},
	}
	for _, o := range objs {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	ks := objs[2].(*deliveryv1.Kustomization)
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, rev)
	groupReady := func(total, ready int32) {
		t.Helper()
		env.WaitFor(t, hub, group, func(g *fleetv1.ClusterGroup) error {
			if g.Status.Clusters.Total != total || g.Status.Clusters.Ready != ready {
				return fmt.Errorf("group clusters %+v, want %d/%d", g.Status.Clusters, ready, total)
			}
			return nil
		})
	}
	groupReady(2, 2)

	fleet.StopAgent("spoke-1")
	stopped := time.Now()
	env.EventuallyWithin(t, grace+10*time.Second, "spoke-1 not Ready", func() error {
		var c fleetv1.Cluster
		if err := hub.Get(ctx, client.ObjectKey{Name: "spoke-1"}, &c); err != nil {
			return err
		}
		r := apimeta.FindStatusCondition(c.Status.Conditions, meta.ReadyCondition)
		if r == nil || r.Status != metav1.ConditionFalse || r.Reason != meta.HeartbeatStaleReason {
			return fmt.Errorf("Ready is %+v", r)
		}
		return nil
	})
	t.Logf("spoke-1 went stale %s after its agent stopped (grace %s)", time.Since(stopped).Round(100*time.Millisecond), grace)
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 1}, rev)
	env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
		r := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition)
		if r == nil || r.Status != metav1.ConditionFalse || !strings.Contains(r.Message, "spoke-1") {
			return fmt.Errorf("Ready is %+v, want False naming spoke-1", r)
		}
		return nil
	})
	groupReady(2, 1)

	fleet.StartAgent("spoke-1")
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, rev)
	env.WaitReady(t, hub, ks)
	groupReady(2, 2)
}

// TestHubSetsTheHeartbeatInterval: the hub announces an interval longer than its own
// grace period on the agent's Lease; the real agent adopts it (renewTime spacing,
// leaseDurationSeconds), the Cluster stays Ready throughout because its grace follows
// the interval (4 × 4 s), and once the agent stops the Cluster turns not Ready after
// that derived grace, not before.
func TestHubSetsTheHeartbeatInterval(t *testing.T) {
	t.Parallel()
	const grace, every = 3 * time.Second, 4 * time.Second
	ctx := context.Background()
	fleet := fleetenv.StartFleet(t, 1, fleetenv.WithHeartbeat(time.Second, grace), fleetenv.With(func(o *devenv.Options) {
		o.Hub = func(h *manager.Options) { h.AgentHeartbeat = every }
		o.Agent = func(a *agent.Options) { a.MinAnnouncedHeartbeat = time.Second }
	}))
	hub := fleet.HubClient()
	leaseKey := client.ObjectKey{Namespace: fleetv1.ClusterNamespace("spoke-1"), Name: fleetv1.AgentLeaseName}
	ready := func() (*metav1.Condition, error) {
		var c fleetv1.Cluster
		if err := hub.Get(ctx, client.ObjectKey{Name: "spoke-1"}, &c); err != nil {
			return nil, err
		}
		return apimeta.FindStatusCondition(c.Status.Conditions, meta.ReadyCondition), nil
	}

	env.Eventually(t, "the agent renews at the announced 4s", func() error {
		var l coordinationv1.Lease
		if err := hub.Get(ctx, leaseKey, &l); err != nil {
			return err
		}
		if v := l.Annotations[fleetv1.HeartbeatIntervalAnnotation]; v != "4s" || l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds != 12 {
			return fmt.Errorf("announcement %q, leaseDurationSeconds %v", v, l.Spec.LeaseDurationSeconds)
		}
		return nil
	})
	// 13 s at the new interval: renewals 4 s apart, and Ready all along although
	// each gap is longer than the hub's 3 s grace.
	var renewals []time.Time
	for end := time.Now().Add(13 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		r, err := ready()
		if err != nil {
			t.Fatal(err)
		}
		if r == nil || r.Status != metav1.ConditionTrue {
			t.Fatalf("spoke-1 not Ready while its agent renews every 4s: %+v", r)
		}
		var l coordinationv1.Lease
		if err := hub.Get(ctx, leaseKey, &l); err != nil {
			t.Fatal(err)
		}
		if n := len(renewals); l.Spec.RenewTime != nil && (n == 0 || !renewals[n-1].Equal(l.Spec.RenewTime.Time)) {
			renewals = append(renewals, l.Spec.RenewTime.Time)
		}
	}
	if len(renewals) < 3 {
		t.Fatalf("%d renewals in 13s at a 4s interval", len(renewals))
	}
	for i := 1; i < len(renewals); i++ {
		if d := renewals[i].Sub(renewals[i-1]); d < 3500*time.Millisecond || d > 4500*time.Millisecond {
			t.Errorf("renewals %s apart, want 4s: %v", d, renewals)
		}
	}

	fleet.StopAgent("spoke-1")
	stopped := time.Now()
	// The last renewal is at most 4 s old: with a 16 s grace the Cluster is Ready
	// for at least 12 s more.
	for time.Since(stopped) < 10*time.Second {
		if r, err := ready(); err != nil || r == nil || r.Status != metav1.ConditionTrue {
			t.Fatalf("spoke-1 not Ready %s after its agent stopped, before the 16s grace: %+v %v", time.Since(stopped), r, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	env.EventuallyWithin(t, 20*time.Second, "spoke-1 not Ready after the derived grace", func() error {
		r, err := ready()
		if err != nil {
			return err
		}
		if r == nil || r.Status != metav1.ConditionFalse || r.Reason != meta.HeartbeatStaleReason || !strings.Contains(r.Message, "grace period 16s") {
			return fmt.Errorf("Ready is %+v", r)
		}
		return nil
	})
	t.Logf("spoke-1 went stale %s after its agent stopped (grace 4 × 4s)", time.Since(stopped).Round(100*time.Millisecond))
}
