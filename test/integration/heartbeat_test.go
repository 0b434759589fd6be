package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/fleetenv"

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
