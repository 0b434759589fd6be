package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollout"
)

func TestDecide(t *testing.T) {
	const rev = "main@sha1:abc"
	base := Rollup{Kind: "Kustomization", Namespace: "apps", Name: "web", Revision: rev}
	with := func(f func(*Rollup)) Rollup {
		r := base
		f(&r)
		return r
	}
	counts := func(targeted, ready, failed int32) meta.ClusterCounts {
		return meta.ClusterCounts{Targeted: targeted, Applied: ready + failed, Ready: ready, Failed: failed}
	}
	boom := []meta.ClusterFailure{{Cluster: "c1", Message: "boom"}, {Cluster: "c2", Message: "bang"}}

	for _, tc := range []struct {
		name string
		in   Rollup
		want Condition
	}{{
		name: "a failed cluster stops a configured rollout",
		in: with(func(r *Rollup) {
			r.RolloutConfigured, r.Clusters, r.Failures = true, counts(5, 1, 2), boom
			r.Plan = rollout.Plan{Failed: []string{"c2"}, Waiting: 2}
		}),
		want: Condition{Stalled, meta.RolloutStalledReason,
			"rollout of revision " + rev + " stopped: cluster c2 failed: bang; 2 clusters wait on their previous revision"},
	}, {
		name: "a stopped rollout names a failure cut from the list",
		in: with(func(r *Rollup) {
			r.RolloutConfigured, r.Clusters, r.Failures = true, counts(40, 0, 33), boom
			r.Plan = rollout.Plan{Failed: []string{"c33"}}
		}),
		want: Condition{Stalled, meta.RolloutStalledReason,
			"rollout of revision " + rev + " stopped: cluster c33 failed: see its Assignment; 0 clusters wait on their previous revision"},
	}, {
		name: "without a rollout, failures do not stall",
		in: with(func(r *Rollup) {
			r.Clusters, r.Failures = counts(3, 1, 2), boom
			r.Plan = rollout.Plan{Failed: []string{"c1", "c2"}}
		}),
		want: Condition{Failed, meta.ClustersFailedReason, "2 of 3 clusters failed revision " + rev + "; c1: boom"},
	}, {
		name: "a paused stage waits for approval",
		in: with(func(r *Rollup) {
			r.RolloutConfigured, r.Clusters = true, counts(4, 1, 0)
			r.Plan = rollout.Plan{PausedAfter: "canary", Stage: "canary", Waiting: 3}
		}),
		want: Condition{Reconciling, meta.RolloutPausedReason,
			"rollout of revision " + rev + " paused after stage canary: 3 clusters wait; approve with `flotilla rollout approve kustomization web -n apps`"},
	}, {
		name: "the approval hint names the owner's kind",
		in: with(func(r *Rollup) {
			r.Kind, r.RolloutConfigured, r.Clusters = "HelmRelease", true, counts(2, 1, 0)
			r.Plan = rollout.Plan{PausedAfter: "one", Waiting: 1}
		}),
		want: Condition{Reconciling, meta.RolloutPausedReason,
			"rollout of revision " + rev + " paused after stage one: 1 clusters wait; approve with `flotilla rollout approve helmrelease web -n apps`"},
	}, {
		name: "the approval hint of a cluster-scoped owner has no namespace",
		in: with(func(r *Rollup) {
			r.Kind, r.Namespace, r.Name, r.RolloutConfigured, r.Clusters = "AgentRollout", "", "flotilla-agent", true, counts(2, 1, 0)
			r.Plan = rollout.Plan{PausedAfter: "canary", Waiting: 1}
		}),
		want: Condition{Reconciling, meta.RolloutPausedReason,
			"rollout of revision " + rev + " paused after stage canary: 1 clusters wait; approve with `flotilla rollout approve agentrollout flotilla-agent`"},
	}, {
		name: "failed clusters",
		in:   with(func(r *Rollup) { r.Clusters, r.Failures = counts(3, 2, 1), boom[:1] }),
		want: Condition{Failed, meta.ClustersFailedReason, "1 of 3 clusters failed revision " + rev + "; c1: boom"},
	}, {
		name: "failed clusters without their failures",
		in:   with(func(r *Rollup) { r.Clusters = counts(3, 2, 1) }),
		want: Condition{Failed, meta.ClustersFailedReason, "1 of 3 clusters failed revision " + rev},
	}, {
		name: "no cluster targeted",
		in:   base,
		want: Condition{Ready, meta.SucceededReason, "built revision " + rev + "; no cluster matches the placement"},
	}, {
		name: "the clusters not ready are silent",
		in: with(func(r *Rollup) {
			r.Clusters, r.Silent = counts(3, 1, 0), []string{"c2", "c3"}
		}),
		want: Condition{Failed, meta.HeartbeatStaleReason, "revision " + rev + " is ready on 1 of 3 clusters; no heartbeat from c2, c3"},
	}, {
		name: "a silent cluster while others still wait is progress",
		in: with(func(r *Rollup) {
			r.Clusters, r.Silent = counts(3, 1, 0), []string{"c2"}
			r.Plan = rollout.Plan{Updating: 1, Waiting: 1}
		}),
		want: Condition{Reconciling, meta.RolloutInProgressReason, "revision " + rev + " is ready on 1 of 3 clusters (1 updating, 1 waiting); no heartbeat from c2"},
	}, {
		name: "a silent cluster and another not ready yet is progress",
		in: with(func(r *Rollup) {
			r.Clusters, r.Silent = counts(3, 1, 0), []string{"c2"}
		}),
		want: Condition{Reconciling, meta.RolloutInProgressReason, "revision " + rev + " is ready on 1 of 3 clusters; no heartbeat from c2"},
	}, {
		name: "many silent clusters are named up to five",
		in: with(func(r *Rollup) {
			r.Clusters, r.Silent = counts(1000, 993, 0), []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7"}
		}),
		want: Condition{Failed, meta.HeartbeatStaleReason, "revision " + rev + " is ready on 993 of 1000 clusters; no heartbeat from c1, c2, c3, c4, c5 and 2 more"},
	}, {
		name: "ready everywhere",
		in:   with(func(r *Rollup) { r.Clusters = counts(3, 3, 0) }),
		want: Condition{Ready, meta.SucceededReason, "revision " + rev + " is ready on 3 of 3 clusters"},
	}, {
		name: "in progress without waiting clusters",
		in:   with(func(r *Rollup) { r.Clusters, r.Plan = counts(3, 1, 0), rollout.Plan{Updating: 2} }),
		want: Condition{Reconciling, meta.RolloutInProgressReason, "revision " + rev + " is ready on 1 of 3 clusters"},
	}, {
		name: "in progress with waiting clusters",
		in: with(func(r *Rollup) {
			r.RolloutConfigured, r.Clusters = true, counts(5, 1, 0)
			r.Plan = rollout.Plan{Updating: 1, Waiting: 3}
		}),
		want: Condition{Reconciling, meta.RolloutInProgressReason, "revision " + rev + " is ready on 1 of 5 clusters (1 updating, 3 waiting)"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Decide(tc.in)); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConditionApply: each state sets the kstatus triple its conditions helper sets.
func TestConditionApply(t *testing.T) {
	type triple struct{ Ready, Reconciling, Stalled metav1.ConditionStatus }
	for state, want := range map[State]triple{
		Ready:       {Ready: metav1.ConditionTrue},
		Reconciling: {Ready: metav1.ConditionUnknown, Reconciling: metav1.ConditionTrue},
		Failed:      {Ready: metav1.ConditionFalse},
		Stalled:     {Ready: metav1.ConditionFalse, Stalled: metav1.ConditionTrue},
	} {
		ks := &deliveryv1.Kustomization{}
		// Start from the opposite corner so that Apply must also remove conditions.
		conditions.MarkStalled(ks, "Before", "before")
		conditions.Set(ks, meta.ReconcilingCondition, metav1.ConditionTrue, "Before", "before")
		Condition{State: state, Reason: "Why", Message: "because"}.Apply(ks)
		status := func(typ string) metav1.ConditionStatus {
			if c := conditions.Get(ks, typ); c != nil {
				if c.Reason != "Why" || c.Message != "because" {
					t.Errorf("%s: %s has reason %q, message %q", state, typ, c.Reason, c.Message)
				}
				return c.Status
			}
			return ""
		}
		got := triple{status(meta.ReadyCondition), status(meta.ReconcilingCondition), status(meta.StalledCondition)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", state, diff)
		}
	}
}
