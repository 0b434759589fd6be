package notification

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

const rev2 = "main@sha1:2222222222222222222222222222222222222222"

func ready(status metav1.ConditionStatus, reason string) *metav1.Condition {
	return &metav1.Condition{Type: meta.ReadyCondition, Status: status, Reason: reason}
}

func TestSteps(t *testing.T) {
	progressing := ready(metav1.ConditionUnknown, meta.RolloutInProgressReason)
	done := ready(metav1.ConditionTrue, meta.SucceededReason)
	counts := meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}
	type step struct{ Reason, Severity, Message, Cluster, Stage string }
	for _, tc := range []struct {
		name string
		prev *Progress
		cur  Progress
		want []step
	}{{
		name: "first seen while rolling out: started",
		cur:  Progress{Revision: rev2, Ready: progressing, Clusters: meta.ClusterCounts{Targeted: 3}},
		want: []step{{RolloutStartedReason, SeverityInfo, "rollout of revision " + rev2 + " started on 3 clusters", "", ""}},
	}, {
		name: "first seen done (a hub restart): nothing",
		cur:  Progress{Revision: rev2, Ready: done, Clusters: counts},
	}, {
		name: "no revision yet: nothing",
		cur:  Progress{Ready: progressing},
	}, {
		name: "same look again: nothing",
		prev: &Progress{Revision: rev2, Stage: "canary", Ready: progressing},
		cur:  Progress{Revision: rev2, Stage: "canary", Ready: progressing},
	}, {
		name: "new revision with a first stage, paused at once",
		prev: &Progress{Revision: "main@sha1:1111111111111111111111111111111111111111", Ready: done, Clusters: counts},
		cur:  Progress{Revision: rev2, Stage: "canary", Paused: true, Waiting: 2, Ready: ready(metav1.ConditionUnknown, meta.RolloutPausedReason), Clusters: meta.ClusterCounts{Targeted: 3}},
		want: []step{
			{RolloutStartedReason, SeverityInfo, "rollout of revision " + rev2 + " started on 3 clusters", "", ""},
			{StageStartedReason, SeverityInfo, "stage canary of revision " + rev2 + " started", "", "canary"},
			{RolloutPausedReason, SeverityInfo, "rollout of revision " + rev2 + " paused after stage canary: 2 clusters wait for approval", "", "canary"},
		},
	}, {
		name: "approved: the remaining clusters' stage",
		prev: &Progress{Revision: rev2, Stage: "canary", Paused: true, Ready: ready(metav1.ConditionUnknown, meta.RolloutPausedReason)},
		cur:  Progress{Revision: rev2, Ready: progressing},
		want: []step{{StageStartedReason, SeverityInfo, "the remaining clusters' stage of revision " + rev2 + " started", "", RemainingStage}},
	}, {
		name: "finished (the last stage's name comes back with it): one message",
		prev: &Progress{Revision: rev2, Ready: progressing},
		cur:  Progress{Revision: rev2, Stage: "canary", Ready: done, Clusters: counts},
		want: []step{{RolloutFinishedReason, SeverityInfo, "revision " + rev2 + " is ready on 3 of 3 clusters", "", ""}},
	}, {
		name: "stalled names the cluster",
		prev: &Progress{Revision: rev2, Ready: progressing},
		cur: Progress{Revision: rev2, Ready: ready(metav1.ConditionFalse, meta.RolloutStalledReason),
			Failures: []meta.ClusterFailure{{Cluster: "spoke-2", Message: "ConfigMap b is immutable"}}},
		want: []step{{RolloutStalledReason, SeverityError, "rollout of revision " + rev2 + " stalled on cluster spoke-2: ConfigMap b is immutable", "spoke-2", ""}},
	}, {
		name: "failed clusters without a rollout: named, the first with its message",
		prev: &Progress{Revision: rev2, Ready: progressing},
		cur: Progress{Revision: rev2, Ready: ready(metav1.ConditionFalse, meta.ClustersFailedReason), Clusters: meta.ClusterCounts{Targeted: 3, Failed: 2},
			Failures: []meta.ClusterFailure{{Cluster: "spoke-1", Message: "x"}, {Cluster: "spoke-3", Message: "y"}}},
		want: []step{{ClustersFailedReason, SeverityError, "revision " + rev2 + " failed on 2 of 3 clusters (spoke-1, spoke-3); spoke-1: x", "spoke-1", ""}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var got []step
			for _, e := range Steps(tc.prev, tc.cur) {
				if e.Metadata[RevisionKey] != tc.cur.Revision {
					t.Errorf("%s carries revision %q, want %q", e.Reason, e.Metadata[RevisionKey], tc.cur.Revision)
				}
				got = append(got, step{e.Reason, e.Severity, e.Message, e.Metadata[ClusterKey], e.Metadata[StageKey]})
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("steps (-want +got):\n%s", d)
			}
		})
	}
}

func TestCommit(t *testing.T) {
	for rev, want := range map[string]string{
		"main@sha1:0123456789abcdef0123456789abcdef01234567": "0123456789abcdef0123456789abcdef01234567",
		"0123456789abcdef0123456789abcdef01234567":           "0123456789abcdef0123456789abcdef01234567",
		"v1.2.3@sha256:0123":                                 "",
		"1.2.3":                                              "",
	} {
		if got := (Event{Metadata: map[string]string{RevisionKey: rev}}).Commit(); got != want {
			t.Errorf("Commit(%q) = %q, want %q", rev, got, want)
		}
	}
}
