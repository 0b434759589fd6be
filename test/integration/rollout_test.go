package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollup"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// unavailableMonitor polls a deployment's Assignments and records the most clusters
// ever seen not Ready on the spec they were handed.
type unavailableMonitor struct {
	mu    sync.Mutex
	max   int
	when  string
	stop  chan struct{}
	done  chan struct{}
	polls int
}

func watchUnavailable(c client.Client, ks *deliveryv1.Kustomization) *unavailableMonitor {
	m := &unavailableMonitor{stop: make(chan struct{}), done: make(chan struct{})}
	// Copied: the test goes on reading ks into the same object meanwhile.
	owner := client.MatchingLabels{
		fleetv1.OwnerKindLabel: deliveryv1.KustomizationKind, fleetv1.OwnerNamespaceLabel: ks.Namespace, fleetv1.OwnerNameLabel: ks.Name,
	}
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var list fleetv1.AssignmentList
			if err := c.List(context.Background(), &list, owner); err != nil {
				continue
			}
			var unready []string
			for i := range list.Items {
				if rollup.AssignmentState(&list.Items[i]) != rollup.Ready {
					unready = append(unready, list.Items[i].Labels[fleetv1.ClusterLabel])
				}
			}
			m.mu.Lock()
			m.polls++
			if len(unready) > m.max {
				m.max, m.when = len(unready), strings.Join(unready, ",")
			}
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *unavailableMonitor) finish(t *testing.T, limit int) {
	t.Helper()
	close(m.stop)
	<-m.done
	if m.polls < 10 {
		t.Fatalf("the monitor only polled %d times", m.polls)
	}
	if m.max > limit {
		t.Fatalf("%d clusters were unavailable at once (%s), maxUnavailable is %d", m.max, m.when, limit)
	}
}

// digests returns each cluster's Assignment digest.
func digests(t *testing.T, c client.Client, ks *deliveryv1.Kustomization) map[string]string {
	t.Helper()
	var list fleetv1.AssignmentList
	if err := c.List(context.Background(), &list, client.MatchingLabels{
		fleetv1.OwnerKindLabel: deliveryv1.KustomizationKind, fleetv1.OwnerNamespaceLabel: ks.Namespace, fleetv1.OwnerNameLabel: ks.Name,
	}); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range list.Items {
		out[a.Labels[fleetv1.ClusterLabel]] = a.Spec.Artifact.Digest
	}
	return out
}

func wantOnDigest(t *testing.T, c client.Client, ks *deliveryv1.Kustomization, digest string, clusters ...string) {
	t.Helper()
	env.Eventually(t, fmt.Sprintf("%v handed %s", clusters, digest), func() error {
		d := digests(t, c, ks)
		for _, cl := range clusters {
			if d[cl] != digest {
				return fmt.Errorf("%s has %s", cl, d[cl])
			}
		}
		return nil
	})
}

func artifactDigest(t *testing.T, c client.Client, ks *deliveryv1.Kustomization, commit string) string {
	t.Helper()
	var digest string
	env.WaitFor(t, c, ks, func(k *deliveryv1.Kustomization) error {
		if k.Status.Artifact == nil || !strings.HasSuffix(k.Status.Artifact.Revision, commit) {
			return fmt.Errorf("artifact %+v, want commit %s", k.Status.Artifact, commit)
		}
		digest = k.Status.Artifact.Digest
		return nil
	})
	return digest
}

// reconcileNow asks the hub to reconcile ks and waits until it has: a barrier after
// which what the hub did not do, it will not do without a change.
func reconcileNow(t *testing.T, c client.Client, ks *deliveryv1.Kustomization) {
	t.Helper()
	token := requestReconcile(t, c, ks)
	env.WaitFor(t, c, ks, func(k *deliveryv1.Kustomization) error {
		if k.Status.LastHandledReconcileAt != token {
			return fmt.Errorf("lastHandledReconcileAt %q, want %q", k.Status.LastHandledReconcileAt, token)
		}
		return nil
	})
}

// TestRollout takes the shared fleet for itself: it stops spoke-1's agent to hold a
// cluster unavailable.
func TestRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := exclusiveFleet(t, "rollout")
	hub := fleet.HubClient()
	spokes := map[string]target{}
	for _, s := range []string{"spoke-1", "spoke-2", "spoke-3"} {
		spokes[s] = spokeTarget(fleet, s, appNS)
	}
	git := gitserver.New(t)
	repo := git.CreateRepo("rollout")
	rev1 := repo.Write(map[string]string{
		"app/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"app/ns.yaml":            namespace(appNS),
		"app/a.yaml":             configMap(appNS, "a", "one"),
	})
	src := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rollout"},
		Spec:       sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}},
	}
	one := intstr.FromInt32(1)
	ks := &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rollout"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "rollout"},
			Path:      "app", Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			Placement: byName("spoke-1", "spoke-2", "spoke-3"),
			Rollout:   &deliveryv1.Rollout{MaxUnavailable: &one},
		},
	}
	for _, o := range []client.Object{src, ks} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, rev1)

	t.Run("maxUnavailable=1 moves one cluster at a time", func(t *testing.T) {
		mon := watchUnavailable(hub, ks)
		old := artifactDigest(t, hub, ks, rev1)
		fleet.StopAgent("spoke-1") // holds spoke-1 unavailable on the new revision
		rev2 := repo.Write(map[string]string{"app/a.yaml": configMap(appNS, "a", "two")})
		fetchNow(t, hub, src, rev2)
		next := artifactDigest(t, hub, ks, rev2)
		wantOnDigest(t, hub, ks, next, "spoke-1")
		env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
			if k.Status.Rollout == nil || k.Status.Rollout.Updating != 1 || k.Status.Rollout.Waiting != 2 {
				return fmt.Errorf("status.rollout %+v, want 1 updating and 2 waiting", k.Status.Rollout)
			}
			return nil
		})
		reconcileNow(t, hub, ks)
		if d := digests(t, hub, ks); d["spoke-2"] != old || d["spoke-3"] != old {
			t.Fatalf("spoke-2 and spoke-3 moved on while spoke-1 is unavailable: digests %v", d)
		}
		fleet.StartAgent("spoke-1")
		for _, s := range spokes {
			s.wantValue(t, "a", "two")
		}
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, rev2)
		mon.finish(t, 1)
	})

	t.Run("a failing cluster stalls the rollout", func(t *testing.T) {
		prev := artifactDigest(t, hub, ks, "")
		// Someone made an immutable ConfigMap "b" by hand on spoke-2: the API server
		// refuses to change its data, so spoke-2 alone fails the new revision.
		immutable := true
		squatter := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "b"},
			Data:       map[string]string{"value": "hand-made"},
			Immutable:  &immutable,
		}
		if err := spokes["spoke-2"].c.Create(ctx, squatter); err != nil {
			t.Fatal(err)
		}
		rev3 := repo.Write(map[string]string{
			"app/kustomization.yaml": kustomization("ns.yaml", "a.yaml", "b.yaml"),
			"app/b.yaml":             configMap(appNS, "b", "new"),
		})
		fetchNow(t, hub, src, rev3)
		next := artifactDigest(t, hub, ks, rev3)
		env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
			c := apimeta.FindStatusCondition(k.Status.Conditions, meta.StalledCondition)
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != meta.RolloutStalledReason || !strings.Contains(c.Message, "spoke-2") {
				return fmt.Errorf("Stalled is %+v, want True/RolloutStalled naming spoke-2", c)
			}
			if len(k.Status.Failures) != 1 || k.Status.Failures[0].Cluster != "spoke-2" {
				return fmt.Errorf("failures %+v", k.Status.Failures)
			}
			return nil
		})
		spokes["spoke-1"].wantValue(t, "b", "new")
		reconcileNow(t, hub, ks)
		if d := digests(t, hub, ks)["spoke-3"]; d != prev {
			t.Fatalf("spoke-3 was handed %s while the rollout is stalled", d)
		}
		// The user acts: the hand-made object goes, spoke-2's agent retries, the rollout goes on.
		if err := spokes["spoke-2"].c.Delete(ctx, squatter); err != nil {
			t.Fatal(err)
		}
		wantOnDigest(t, hub, ks, next, "spoke-1", "spoke-2", "spoke-3")
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, rev3)
		env.WaitReady(t, hub, ks)
	})

	t.Run("a canary stage pauses until approved", func(t *testing.T) {
		var cur deliveryv1.Kustomization
		if err := hub.Get(ctx, client.ObjectKeyFromObject(ks), &cur); err != nil {
			t.Fatal(err)
		}
		prev := cur.Status.Artifact.Digest
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Spec.Rollout = &deliveryv1.Rollout{Stages: []deliveryv1.RolloutStage{{
			Name: "canary", Pause: true,
			ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "spoke-3"}},
		}}}
		if err := hub.Patch(ctx, &cur, patch); err != nil {
			t.Fatal(err)
		}
		rev4 := repo.Write(map[string]string{"app/a.yaml": configMap(appNS, "a", "four")})
		fetchNow(t, hub, src, rev4)
		next := artifactDigest(t, hub, ks, rev4)
		spokes["spoke-3"].wantValue(t, "a", "four")
		env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
			c := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReconcilingCondition)
			if c == nil || c.Reason != meta.RolloutPausedReason || k.Status.Rollout == nil || !k.Status.Rollout.Paused {
				return fmt.Errorf("Reconciling %+v rollout %+v, want paused after canary", c, k.Status.Rollout)
			}
			return nil
		})
		reconcileNow(t, hub, ks)
		if d := digests(t, hub, ks); d["spoke-1"] != prev || d["spoke-2"] != prev {
			t.Fatalf("spoke-1 and spoke-2 not held after the canary: digests %v", d)
		}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(ks), &cur); err != nil {
			t.Fatal(err)
		}
		patch = client.MergeFrom(cur.DeepCopy())
		cur.Annotations = map[string]string{deliveryv1.ApprovedStageAnnotation: "canary@" + time.Now().Format(time.RFC3339Nano)}
		if err := hub.Patch(ctx, &cur, patch); err != nil {
			t.Fatal(err)
		}
		wantOnDigest(t, hub, ks, next, "spoke-1", "spoke-2", "spoke-3")
		for _, s := range spokes {
			s.wantValue(t, "a", "four")
		}
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, rev4)
	})
}
