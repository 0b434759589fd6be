package fleetbench

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
)

// TestSimHonoursTheAnnouncedInterval: a simulated agent keeps the hub's announcement
// on its Lease, adopts it after the one conflict the hub's patch causes (writing
// leaseDurationSeconds = 3 × interval), and keeps its own interval when the
// announcement is out of bounds, as spoke/agent does.
func TestSimHonoursTheAnnouncedInterval(t *testing.T) {
	ctx := context.Background()
	cp := env.StartControlPlane(t, "hub", true)
	c, err := client.NewWithWatch(cp.Config(), client.Options{Scheme: api.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := fleetv1.ClusterNamespace("sim")
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	s := &simCluster{name: "sim", ns: ns, c: c, heartbeat: 10 * time.Second, errs: &errorLog{}}
	key := types.NamespacedName{Namespace: ns, Name: fleetv1.AgentLeaseName}
	announce := func(v string) {
		t.Helper()
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.AgentLeaseName}}
		patch := []byte(`{"metadata":{"annotations":{"` + fleetv1.HeartbeatIntervalAnnotation + `":"` + v + `"}}}`)
		if err := c.Patch(ctx, l, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
	}
	renew := func(wantEvery time.Duration, wantDuration int32, wantAnnotation string) {
		t.Helper()
		if err := s.renew(ctx); err != nil {
			t.Fatal(err)
		}
		var l coordinationv1.Lease
		if err := c.Get(ctx, key, &l); err != nil {
			t.Fatal(err)
		}
		if s.interval() != wantEvery || *l.Spec.LeaseDurationSeconds != wantDuration ||
			l.Annotations[fleetv1.HeartbeatIntervalAnnotation] != wantAnnotation || l.Annotations[fleetv1.AgentVersionAnnotation] != "bench" {
			t.Fatalf("after a renewal: every %s, leaseDurationSeconds %d, annotations %v; want %s, %d, %q",
				s.interval(), *l.Spec.LeaseDurationSeconds, l.Annotations, wantEvery, wantDuration, wantAnnotation)
		}
	}
	renew(10*time.Second, 30, "")
	announce("20s")
	renew(20*time.Second, 60, "20s") // conflicts, reads, renews with the new interval
	renew(20*time.Second, 60, "20s") // the announcement stays through a plain Update
	announce("1s")
	renew(10*time.Second, 30, "1s") // out of bounds: its own interval
}
