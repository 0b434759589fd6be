package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

func TestAutoHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		clusters int
		want     time.Duration
	}{
		{0, 10 * time.Second},
		{1, 10 * time.Second},
		{500, 10 * time.Second},
		{501, 15 * time.Second}, // 10.02 s rounded up to the next 5 s
		{750, 15 * time.Second},
		{751, 20 * time.Second},
		{1000, 20 * time.Second}, // 50 renewals a second
		{1001, 25 * time.Second},
		{3000, 60 * time.Second},
		{3001, 60 * time.Second}, // the bound: the rate grows again past here
		{10000, 60 * time.Second},
	} {
		if got := AutoHeartbeat(tc.clusters); got != tc.want {
			t.Errorf("AutoHeartbeat(%d) = %s, want %s", tc.clusters, got, tc.want)
		}
	}
}

func TestHeartbeatPolicy(t *testing.T) {
	auto := HeartbeatPolicy{}
	for _, tc := range []struct {
		name     string
		policy   HeartbeatPolicy
		clusters int
		current  time.Duration
		want     time.Duration
	}{
		{"first decision, small fleet", auto, 1, 0, 10 * time.Second},
		{"first decision, 1000", auto, 1000, 0, 20 * time.Second},
		{"first decision, 10000", auto, 10000, 0, 60 * time.Second},
		{"growing past a boundary lengthens at once", auto, 501, 10 * time.Second, 15 * time.Second},
		{"growing by several steps", auto, 3000, 10 * time.Second, 60 * time.Second},
		{"back under the boundary keeps the longer interval", auto, 500, 15 * time.Second, 15 * time.Second},
		{"a tenth under the boundary still keeps it", auto, 455, 15 * time.Second, 15 * time.Second},
		{"more than a tenth under shortens", auto, 454, 15 * time.Second, 10 * time.Second},
		{"1000 shrinking to 900 keeps 20s", auto, 900, 20 * time.Second, 20 * time.Second},
		{"1000 shrinking to 682 keeps 20s", auto, 682, 20 * time.Second, 20 * time.Second},
		{"1000 shrinking to 681 goes to 15s", auto, 681, 20 * time.Second, 15 * time.Second},
		{"a big drop goes straight to the base", auto, 10, 60 * time.Second, 10 * time.Second},
		{"unchanged", auto, 1000, 20 * time.Second, 20 * time.Second},
		{"a pinned interval longer than auto's cap is shortened to auto", auto, 10000, 2 * time.Minute, 60 * time.Second},
		{"pinned, small fleet", HeartbeatPolicy{Pinned: 30 * time.Second}, 1, 0, 30 * time.Second},
		{"pinned, large fleet", HeartbeatPolicy{Pinned: 30 * time.Second}, 10000, 60 * time.Second, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.Interval(tc.clusters, tc.current); got != tc.want {
				t.Errorf("Interval(%d, %s) = %s, want %s", tc.clusters, tc.current, got, tc.want)
			}
		})
	}
}

// A fleet that hovers at a boundary must not make the agents switch back and forth.
func TestHeartbeatPolicyHysteresis(t *testing.T) {
	p := HeartbeatPolicy{}
	current := p.Interval(480, 0)
	changes := 0
	for _, n := range []int{495, 501, 499, 502, 498, 510, 470, 505, 460, 500} {
		if next := p.Interval(n, current); next != current {
			changes++
			current = next
		}
	}
	if changes != 1 || current != 15*time.Second {
		t.Errorf("a fleet between 460 and 510 clusters changed the interval %d times (now %s), want once, to 15s", changes, current)
	}
}

func TestHeartbeatGrace(t *testing.T) {
	const grace = 40 * time.Second
	lease := func(seconds *int32, announced string) *coordinationv1.Lease {
		l := &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: seconds}}
		if announced != "" {
			l.Annotations = map[string]string{fleetv1.HeartbeatIntervalAnnotation: announced}
		}
		return l
	}
	for _, tc := range []struct {
		name  string
		lease *coordinationv1.Lease
		want  time.Duration
	}{
		{"10s agent: the flag's grace", lease(ptr.To[int32](30), ""), grace},
		{"old agent at 10s, hub announced 60s: judged by what it renews at", lease(ptr.To[int32](30), "60s"), grace},
		{"20s agent", lease(ptr.To[int32](60), "20s"), 80 * time.Second},
		{"60s agent", lease(ptr.To[int32](180), "60s"), 4 * time.Minute},
		{"no duration: the announced interval", lease(nil, "15s"), time.Minute},
		{"neither", lease(nil, ""), grace},
		{"a huge duration is bounded", lease(ptr.To[int32](86400), ""), 4 * fleetv1.MaxHeartbeatInterval},
		{"1s test agent", lease(ptr.To[int32](3), ""), grace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HeartbeatGrace(tc.lease, grace); got != tc.want {
				t.Errorf("HeartbeatGrace = %s, want %s", got, tc.want)
			}
		})
	}
	if got := HeartbeatGrace(lease(ptr.To[int32](3), ""), 3*time.Second); got != 4*time.Second {
		t.Errorf("a 1s agent with a 3s grace gets %s, want 4s", got)
	}
}

// TestAgentHeartbeatDecides drives the controller over a growing and shrinking fleet:
// the interval follows the policy, changes at most once per hold, each change wakes
// every Cluster once, and a restarted hub carries on with the agents' interval.
func TestAgentHeartbeatDecides(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(api.NewScheme()).Build()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	newController := func() *AgentHeartbeat {
		a := &AgentHeartbeat{Client: c, Hold: 30 * time.Second, Now: func() time.Time { return now }}
		a.events()
		return a
	}
	a := newController()
	clusters := 0
	resize := func(n int) {
		t.Helper()
		for ; clusters < n; clusters++ {
			if err := c.Create(ctx, &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", clusters)}}); err != nil {
				t.Fatal(err)
			}
		}
		for ; clusters > n; clusters-- {
			if err := c.Delete(ctx, &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", clusters-1)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// step reconciles and checks the interval, the wait asked for and how many
	// Clusters were woken.
	step := func(a *AgentHeartbeat, want, wantRequeue time.Duration, wantWoken int) {
		t.Helper()
		res, err := a.Reconcile(ctx, ctrl.Request{})
		if err != nil {
			t.Fatal(err)
		}
		woken := 0
		for len(a.clusters) > 0 {
			<-a.clusters
			woken++
		}
		if a.Interval() != want || res.RequeueAfter != wantRequeue || woken != wantWoken {
			t.Fatalf("%d clusters: interval %s, requeue %s, %d woken; want %s, %s, %d",
				clusters, a.Interval(), res.RequeueAfter, woken, want, wantRequeue, wantWoken)
		}
	}

	resize(3)
	step(a, 10*time.Second, 0, 3)
	step(a, 10*time.Second, 0, 0) // nothing changed: nobody woken
	resize(800)
	now = now.Add(10 * time.Second)
	step(a, 10*time.Second, 20*time.Second, 0) // held: the last change was 10 s ago
	now = now.Add(20 * time.Second)
	step(a, 20*time.Second, 0, 800)
	resize(700) // within the band: stays
	now = now.Add(time.Minute)
	step(a, 20*time.Second, 0, 0)
	resize(600)
	step(a, 15*time.Second, 0, 600)

	// A restarted hub finds 15s on most Leases and keeps it for 520 clusters (where a
	// fresh start would say 15s too) and for 460 (where a fresh start would say 10s).
	for i, v := range []string{"15s", "15s", "10s"} {
		ns := fleetv1.ClusterNamespace(fmt.Sprintf("c%d", i))
		if err := c.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.AgentLeaseName,
			Annotations: map[string]string{fleetv1.HeartbeatIntervalAnnotation: v}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else's Lease with an annotation does not count.
	if err := c.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "other",
		Annotations: map[string]string{fleetv1.HeartbeatIntervalAnnotation: "5m"}}}); err != nil {
		t.Fatal(err)
	}
	resize(460)
	step(newController(), 15*time.Second, 0, 460)
	c2 := fake.NewClientBuilder().WithScheme(api.NewScheme()).Build()
	fresh := &AgentHeartbeat{Client: c2, Hold: 30 * time.Second, Now: func() time.Time { return now }}
	fresh.events()
	if _, err := fresh.Reconcile(ctx, ctrl.Request{}); err != nil || fresh.Interval() != 10*time.Second {
		t.Fatalf("a fresh hub with no Leases decided %s (%v), want 10s", fresh.Interval(), err)
	}

	pinned := newController()
	pinned.Policy.Pinned = 45 * time.Second
	step(pinned, 45*time.Second, 0, 460)
}
