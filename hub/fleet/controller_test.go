package fleet_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/fleet"
	"github.com/flotilla-dev/flotilla/test/env"
)

// groupLooks counts, per group, the reconciles of the ClusterGroup controller (each
// starts with a Get of its group).
type groupLooks struct {
	client.Client
	mu    sync.Mutex
	looks map[string]int
}

func (c *groupLooks) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*fleetv1.ClusterGroup); ok {
		c.mu.Lock()
		c.looks[key.Name]++
		c.mu.Unlock()
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *groupLooks) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.looks))
	for k, v := range c.looks {
		out[k] = v
	}
	return out
}

// clusterWrites counts the writes to one Cluster, as its watch shows them.
type clusterWrites struct {
	mu     sync.Mutex
	events []fleetv1.Cluster
}

func (w *clusterWrites) seen() []fleetv1.Cluster {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]fleetv1.Cluster(nil), w.events...)
}

func watchCluster(t *testing.T, c client.WithWatch, name, fromRV string) *clusterWrites {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := c.Watch(ctx, &fleetv1.ClusterList{}, &client.ListOptions{Raw: &metav1.ListOptions{
		ResourceVersion: fromRV, FieldSelector: "metadata.name=" + name,
	}})
	if err != nil {
		cancel()
		t.Fatalf("watch Cluster %s: %v", name, err)
	}
	out := &clusterWrites{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				out.mu.Lock()
				out.events = append(out.events, *ev.Object.(*fleetv1.Cluster))
				out.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); cancel(); <-done })
	return out
}

// TestHeartbeatOnARealAPIServer renews an agent's Lease by hand and counts the writes
// the hub makes to the Cluster and the groups it wakes: renewals that change nothing
// write nothing and wake no group; a version change writes once and wakes no group; a
// silent agent turns the Cluster Ready=False (HeartbeatStale) after the grace period,
// writes the exact last heartbeat, and wakes only the groups that select the Cluster.
func TestHeartbeatOnARealAPIServer(t *testing.T) {
	const grace = 8 * time.Second // lastHeartbeatTime moves by grace/2 steps
	ctx := context.Background()
	cp := env.StartControlPlane(t, "fleet", true)
	hub := cp.Client()
	looks := &groupLooks{looks: map[string]int{}}
	env.StartManager(t, cp.Config(), func(mgr ctrl.Manager) error {
		looks.Client = mgr.GetClient()
		if err := (&fleet.ClusterReconciler{Client: mgr.GetClient(), HeartbeatGrace: grace}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&fleet.ClusterGroupReconciler{Client: looks}).SetupWithManager(mgr)
	})

	prod := &fleetv1.ClusterGroup{ObjectMeta: metav1.ObjectMeta{Name: "prod"},
		Spec: fleetv1.ClusterGroupSpec{ClusterSelector: metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}}
	dev := &fleetv1.ClusterGroup{ObjectMeta: metav1.ObjectMeta{Name: "dev"},
		Spec: fleetv1.ClusterGroupSpec{ClusterSelector: metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}}
	cl := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "c1", Labels: map[string]string{"env": "prod"}}}
	for _, o := range []client.Object{prod, dev, cl} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	ns := fleetv1.ClusterNamespace(cl.Name)
	env.WaitFor(t, hub, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, func(*corev1.Namespace) error { return nil })
	env.WaitForCondition(t, hub, cl, meta.ReadyCondition, metav1.ConditionUnknown)

	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.AgentLeaseName,
		Annotations: map[string]string{fleetv1.AgentVersionAnnotation: "v1", fleetv1.KubernetesVersionAnnotation: "v1.36.0"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("c1"), RenewTime: ptr.To(metav1.NewMicroTime(time.Now()))}}
	if err := hub.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(t, hub, cl, func(c *fleetv1.Cluster) error {
		if r := apimeta.FindStatusCondition(c.Status.Conditions, meta.ReadyCondition); r == nil || r.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready is %+v", r)
		}
		if c.Status.AgentVersion != "v1" || c.Status.LastHeartbeatTime == nil {
			return fmt.Errorf("agentVersion %q, lastHeartbeatTime %v", c.Status.AgentVersion, c.Status.LastHeartbeatTime)
		}
		return nil
	})
	groupCounts := func(g *fleetv1.ClusterGroup, total, ready int32) {
		t.Helper()
		env.WaitFor(t, hub, g, func(g *fleetv1.ClusterGroup) error {
			if g.Status.Clusters.Total != total || g.Status.Clusters.Ready != ready {
				return fmt.Errorf("clusters %+v, want %d of %d ready", g.Status.Clusters, ready, total)
			}
			return nil
		})
	}
	groupCounts(prod, 1, 1)
	groupCounts(dev, 0, 0)
	// Let the group controller finish what the start woke it for.
	time.Sleep(time.Second)

	recorded := cl.Status.LastHeartbeatTime.Time
	writes := watchCluster(t, clientWithWatch(t, cp.Config()), cl.Name, cl.ResourceVersion)
	before := looks.snapshot()
	renew := func(at time.Time, version string) {
		t.Helper()
		if err := hub.Get(ctx, client.ObjectKeyFromObject(lease), lease); err != nil {
			t.Fatal(err)
		}
		lease.Spec.RenewTime = ptr.To(metav1.NewMicroTime(at))
		lease.Annotations[fleetv1.AgentVersionAnnotation] = version
		if err := hub.Update(ctx, lease); err != nil {
			t.Fatal(err)
		}
	}

	// Renewals within grace/2 of the recorded heartbeat change nothing anyone sees.
	// Their times are set from the recorded one, not the clock, so that a slow
	// machine cannot turn them into a visible change.
	const renewals = 6
	for i := 1; i <= renewals; i++ {
		renew(recorded.Add(time.Duration(i)*500*time.Millisecond), "v1")
		time.Sleep(200 * time.Millisecond)
	}
	// A version change is visible: exactly one write, which shows that the hub did
	// look at the renewals before it and wrote nothing for them.
	lastRenew := recorded.Add((renewals + 1) * 500 * time.Millisecond)
	renew(lastRenew, "v2")
	env.Eventually(t, "the agent version on the Cluster", func() error {
		seen := writes.seen()
		if len(seen) == 0 || seen[len(seen)-1].Status.AgentVersion != "v2" {
			return fmt.Errorf("%d writes, none with agentVersion v2", len(seen))
		}
		return nil
	})
	if seen := writes.seen(); len(seen) != 1 {
		t.Fatalf("%d renewals and one version change made %d Cluster writes, want 1", renewals, len(seen))
	} else if got := seen[0].Status.LastHeartbeatTime; got == nil || !got.Equal(&metav1.Time{Time: recorded}) {
		t.Errorf("lastHeartbeatTime moved to %v within grace/2 of %v", got, recorded)
	}
	if after := looks.snapshot(); after["prod"] != before["prod"] || after["dev"] != before["dev"] {
		t.Errorf("heartbeats woke cluster groups: looks %v, then %v", before, after)
	}

	// Silence: Ready=False once the grace period has passed since the last renewal.
	env.EventuallyWithin(t, grace+20*time.Second, "Cluster c1 to go stale", func() error {
		if err := hub.Get(ctx, client.ObjectKeyFromObject(cl), cl); err != nil {
			return err
		}
		r := apimeta.FindStatusCondition(cl.Status.Conditions, meta.ReadyCondition)
		if r == nil || r.Status != metav1.ConditionFalse || r.Reason != meta.HeartbeatStaleReason {
			return fmt.Errorf("Ready is %+v", r)
		}
		return nil
	})
	if early := lastRenew.Add(grace).Sub(time.Now()); early > 0 {
		t.Errorf("stale %s before the grace period ran out", early)
	}
	if got, want := cl.Status.LastHeartbeatTime, metav1.NewTime(lastRenew).Rfc3339Copy(); got == nil || !got.Equal(&want) {
		t.Errorf("stale Cluster shows lastHeartbeatTime %v, want the last renewal %v", got, want)
	}
	if seen := writes.seen(); len(seen) != 2 {
		t.Errorf("going stale made %d Cluster writes, want 1", len(seen)-1)
	}
	groupCounts(prod, 1, 0)
	if after := looks.snapshot(); after["prod"] == before["prod"] || after["dev"] != before["dev"] {
		t.Errorf("going stale should wake prod only: looks %v, then %v", before, after)
	}

	// A renewal brings it back.
	renew(time.Now(), "v2")
	env.WaitReady(t, hub, cl)
	groupCounts(prod, 1, 1)
}

func clientWithWatch(t *testing.T, cfg *rest.Config) client.WithWatch {
	t.Helper()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: api.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAgentHeartbeatAnnouncedOnTheLease: with the interval controller, the Cluster
// controller writes the fleet's interval (auto: 10s for one cluster) on the agent's
// Lease once, keeps it when the agent's renewal drops it, and writes nothing when a
// renewal keeps it.
func TestAgentHeartbeatAnnouncedOnTheLease(t *testing.T) {
	ctx := context.Background()
	cp := env.StartControlPlane(t, "fleet", true)
	hub := cp.Client()
	env.StartManager(t, cp.Config(), func(mgr ctrl.Manager) error {
		ahb := &fleet.AgentHeartbeat{Client: mgr.GetClient()}
		if err := ahb.SetupWithManager(mgr); err != nil {
			return err
		}
		return (&fleet.ClusterReconciler{Client: mgr.GetClient(), AgentHeartbeat: ahb}).SetupWithManager(mgr)
	})
	if err := hub.Create(ctx, &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "c1"}}); err != nil {
		t.Fatal(err)
	}
	ns := fleetv1.ClusterNamespace("c1")
	env.Eventually(t, "the cluster namespace", func() error {
		return hub.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
	})
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.AgentLeaseName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("c1"), LeaseDurationSeconds: ptr.To[int32](30), RenewTime: &now}}
	if err := hub.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}
	announced := func() error {
		if err := hub.Get(ctx, client.ObjectKeyFromObject(lease), lease); err != nil {
			return err
		}
		if v := lease.Annotations[fleetv1.HeartbeatIntervalAnnotation]; v != "10s" {
			return fmt.Errorf("announcement %q, want 10s", v)
		}
		return nil
	}
	env.Eventually(t, "the Lease announces 10s", announced)

	// A renewal that keeps the annotation: the hub writes nothing after it.
	now = metav1.NewMicroTime(time.Now())
	lease.Spec.RenewTime = &now
	if err := hub.Update(ctx, lease); err != nil {
		t.Fatal(err)
	}
	rv := lease.ResourceVersion
	time.Sleep(2 * time.Second)
	if err := announced(); err != nil || lease.ResourceVersion != rv {
		t.Errorf("after a renewal that kept the announcement the Lease moved from %s to %s (%v)", rv, lease.ResourceVersion, err)
	}

	// A renewal that drops it: written again.
	delete(lease.Annotations, fleetv1.HeartbeatIntervalAnnotation)
	if err := hub.Update(ctx, lease); err != nil {
		t.Fatal(err)
	}
	env.Eventually(t, "the Lease announces 10s again", announced)
}
