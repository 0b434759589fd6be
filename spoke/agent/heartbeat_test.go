package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
)

type fixedVersion struct{}

func (fixedVersion) ServerVersion() (*version.Info, error) {
	return &version.Info{GitVersion: "v1.36.3"}, nil
}

// TestHeartbeatRequests: a renewal is one request to the hub once the Lease is known
// (at 1,000 clusters every request per beat is 100 per second on the hub), and a Lease
// changed or deleted behind the agent's back is read again, not lost.
func TestHeartbeatRequests(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var gets, writes int
	c := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			writes++
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes++
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	h := &heartbeat{writer: c, reader: c, namespace: "cluster-a", cluster: "a", interval: 10 * time.Second,
		versions: fixedVersion{}, log: log.Log}
	key := types.NamespacedName{Namespace: "cluster-a", Name: fleetv1.AgentLeaseName}
	beat := func() {
		t.Helper()
		if err := h.beat(ctx); err != nil {
			t.Fatal(err)
		}
	}

	beat() // creates it
	for range 5 {
		beat()
	}
	if gets != 1 || writes != 6 {
		t.Errorf("6 beats made %d reads and %d writes, want 1 read (the first) and 6 writes", gets, writes)
	}

	// Someone else updated it: the next beat conflicts, reads, and renews.
	other := &coordinationv1.Lease{}
	if err := c.Get(ctx, key, other); err != nil {
		t.Fatal(err)
	}
	other.Annotations["touched"] = "yes"
	if err := c.Update(ctx, other); err != nil {
		t.Fatal(err)
	}
	gets, writes = 0, 0
	beat()
	if gets != 1 || writes != 2 {
		t.Errorf("a beat after a conflict made %d reads and %d writes, want 1 and 2 (the refused one, then the renewal)", gets, writes)
	}

	// Deleted: recreated.
	if err := c.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
	beat()
	got := &coordinationv1.Lease{}
	if err := c.Get(ctx, key, got); err != nil {
		t.Fatalf("the Lease was not recreated: %v", err)
	}
	if got.Spec.HolderIdentity == nil || *got.Spec.HolderIdentity != "a" || got.Spec.RenewTime == nil {
		t.Errorf("recreated Lease %+v", got.Spec)
	}
}

// conflicts counts the renewals the hub refused with a conflict.
type conflicts struct {
	client.Client
	mu sync.Mutex
	n  int
}

func (c *conflicts) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	err := c.Client.Update(ctx, obj, opts...)
	if apierrors.IsConflict(err) {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return err
}

func (c *conflicts) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestHeartbeatAdoptsTheAnnouncedInterval runs the heartbeat against a real API
// server and patches the Lease's announcement as the hub does: the agent's next
// renewal conflicts once, reads the Lease, and from then on renews at the announced
// interval (renewTime spacing) with leaseDurationSeconds = 3 × it, keeping the
// annotation; an announcement out of bounds puts it back on its own interval.
func TestHeartbeatAdoptsTheAnnouncedInterval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp := env.StartControlPlane(t, "hub", false)
	ns := fleetv1.ClusterNamespace("a")
	admin := cp.Client()
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	w := &conflicts{Client: admin}
	h := &heartbeat{writer: w, reader: admin, namespace: ns, cluster: "a", interval: 500 * time.Millisecond,
		minAnnounced: time.Second, versions: fixedVersion{}, log: log.Log}
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Start(ctx) }()
	defer func() { cancel(); <-done }()

	key := types.NamespacedName{Namespace: ns, Name: fleetv1.AgentLeaseName}
	// renewals collects renewTimes (as the hub sees them) for d.
	renewals := func(d time.Duration) (times []time.Time, last coordinationv1.Lease) {
		t.Helper()
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			var l coordinationv1.Lease
			if err := admin.Get(ctx, key, &l); err == nil && l.Spec.RenewTime != nil {
				if n := len(times); n == 0 || !times[n-1].Equal(l.Spec.RenewTime.Time) {
					times = append(times, l.Spec.RenewTime.Time)
				}
				last = l
			}
			time.Sleep(50 * time.Millisecond)
		}
		return times, last
	}
	spacing := func(times []time.Time) (lo, hi time.Duration) {
		lo = time.Hour
		for i := 1; i < len(times); i++ {
			d := times[i].Sub(times[i-1])
			lo, hi = min(lo, d), max(hi, d)
		}
		return lo, hi
	}
	announce := func(v string) {
		t.Helper()
		patch := []byte(`{"metadata":{"annotations":{"` + fleetv1.HeartbeatIntervalAnnotation + `":"` + v + `"}}}`)
		if err := admin.Patch(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.AgentLeaseName}},
			client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
	}

	times, l := renewals(2 * time.Second)
	if lo, hi := spacing(times); len(times) < 3 || lo < 300*time.Millisecond || hi > 900*time.Millisecond || *l.Spec.LeaseDurationSeconds != 2 {
		t.Fatalf("own interval: %d renewals %s..%s apart, leaseDurationSeconds %d; want every 500ms, 2 (1.5 rounded)", len(times), lo, hi, *l.Spec.LeaseDurationSeconds)
	}

	announce("2s")
	time.Sleep(time.Second) // the renewal that conflicts and adopts
	if n := w.count(); n != 1 {
		t.Errorf("%d conflicting renewals after the announcement, want 1", n)
	}
	times, l = renewals(7 * time.Second)
	if lo, hi := spacing(times); len(times) < 3 || lo < 1800*time.Millisecond || hi > 2300*time.Millisecond {
		t.Errorf("announced 2s: %d renewals %s..%s apart, want every 2s", len(times), lo, hi)
	}
	if *l.Spec.LeaseDurationSeconds != 6 || l.Annotations[fleetv1.HeartbeatIntervalAnnotation] != "2s" || l.Annotations[fleetv1.AgentVersionAnnotation] == "" {
		t.Errorf("announced 2s: leaseDurationSeconds %d, annotations %v; want 6 and the announcement kept", *l.Spec.LeaseDurationSeconds, l.Annotations)
	}
	if n := w.count(); n != 1 {
		t.Errorf("%d conflicts in all, want the one the announcement caused", n)
	}

	announce("100ms") // below the bounds: the agent's own again
	time.Sleep(2500 * time.Millisecond)
	times, l = renewals(2 * time.Second)
	if lo, hi := spacing(times); len(times) < 3 || hi > 900*time.Millisecond || *l.Spec.LeaseDurationSeconds != 2 {
		t.Errorf("out-of-bounds announcement: %d renewals %s..%s apart, leaseDurationSeconds %d; want its own 500ms and 2", len(times), lo, hi, *l.Spec.LeaseDurationSeconds)
	}
}
