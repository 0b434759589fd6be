package notification

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// RemainingStage names, in events, the implicit last stage: the clusters no stage selects.
const RemainingStage = "(remaining)"

// Progress is what the step events are derived from: one look at a deployment's
// status (Kustomization or HelmRelease).
type Progress struct {
	// Revision being rolled out: status.rollout.revision, else lastAppliedRevision.
	Revision string
	// Stage in progress and whether it waits for approval (status.rollout).
	Stage  string
	Paused bool
	// Ready is the Ready condition (nil when not set).
	Ready *metav1.Condition
	// Clusters are the counts, Failures the failed clusters by name.
	Clusters meta.ClusterCounts
	Failures []meta.ClusterFailure
	// Waiting is the number of clusters not handed the revision yet.
	Waiting int32
}

// Steps returns the fleet-step events between two looks at one deployment, in the
// order they happened: started, stage reached, paused, then finished or stalled or
// failed. prev is nil for a deployment seen for the first time, which counts as a
// start unless it is already done. Only Kind, Namespace, Name and Labels of the
// events are left to the caller.
func Steps(prev *Progress, cur Progress) []Event {
	if cur.Revision == "" {
		return nil
	}
	var out []Event
	add := func(sev, reason, msg string, md map[string]string) {
		m := map[string]string{RevisionKey: cur.Revision}
		for k, v := range md {
			m[k] = v
		}
		out = append(out, Event{Severity: sev, Reason: reason, Message: msg, Metadata: m})
	}
	state := func(p *Progress) string {
		if p == nil || p.Ready == nil {
			return ""
		}
		if p.Ready.Status == metav1.ConditionTrue {
			return meta.SucceededReason
		}
		return p.Ready.Reason
	}
	newRevision := prev == nil || prev.Revision != cur.Revision
	if prev == nil && state(&cur) == meta.SucceededReason {
		return nil // already done when first seen: nothing happened since
	}
	if newRevision {
		prev = nil
		add(SeverityInfo, RolloutStartedReason, fmt.Sprintf("rollout of revision %s started on %d clusters", cur.Revision, cur.Clusters.Targeted), nil)
	}
	if cur.Stage != "" && (prev == nil || prev.Stage != cur.Stage) && !(state(&cur) == meta.SucceededReason && prev != nil) {
		add(SeverityInfo, StageStartedReason, fmt.Sprintf("stage %s of revision %s started", cur.Stage, cur.Revision), map[string]string{StageKey: cur.Stage})
	}
	if prev != nil && prev.Stage != "" && cur.Stage == "" && state(&cur) != meta.SucceededReason {
		add(SeverityInfo, StageStartedReason, fmt.Sprintf("the remaining clusters' stage of revision %s started", cur.Revision), map[string]string{StageKey: RemainingStage})
	}
	if cur.Paused && (prev == nil || !prev.Paused) {
		add(SeverityInfo, RolloutPausedReason, fmt.Sprintf("rollout of revision %s paused after stage %s: %d clusters wait for approval", cur.Revision, cur.Stage, cur.Waiting), map[string]string{StageKey: cur.Stage})
	}
	was, is := state(prev), state(&cur)
	if was == is {
		return out
	}
	switch is {
	case meta.SucceededReason:
		add(SeverityInfo, RolloutFinishedReason, fmt.Sprintf("revision %s is ready on %d of %d clusters", cur.Revision, cur.Clusters.Ready, cur.Clusters.Targeted), nil)
	case meta.RolloutStalledReason:
		c := firstFailed(cur)
		add(SeverityError, RolloutStalledReason, fmt.Sprintf("rollout of revision %s stalled on cluster %s: %s", cur.Revision, c.Cluster, c.Message), map[string]string{ClusterKey: c.Cluster})
	case meta.ClustersFailedReason:
		names := make([]string, 0, len(cur.Failures))
		for _, f := range cur.Failures {
			names = append(names, f.Cluster)
		}
		sort.Strings(names)
		c := firstFailed(cur)
		add(SeverityError, ClustersFailedReason, fmt.Sprintf("revision %s failed on %d of %d clusters (%s); %s: %s", cur.Revision, cur.Clusters.Failed, cur.Clusters.Targeted, strings.Join(names, ", "), c.Cluster, c.Message),
			map[string]string{ClusterKey: c.Cluster, ClustersKey: strings.Join(names, ",")})
	}
	return out
}

func firstFailed(p Progress) meta.ClusterFailure {
	if len(p.Failures) > 0 {
		return p.Failures[0]
	}
	return meta.ClusterFailure{Cluster: "unknown", Message: "see the deployment's status"}
}
