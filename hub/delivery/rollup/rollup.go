// Package rollup computes, without side effects, the bounded status summaries the hub
// shows: per deployment over its targeted clusters, and per cluster or group over
// Assignments.
package rollup

import (
	"sort"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// State is what one Assignment says of its cluster.
type State int

const (
	// Pending: the agent has not reported on the current spec yet.
	Pending State = iota
	// Applied: the current artifact runs but is not (yet) healthy.
	Applied
	// Ready: the current artifact runs and is healthy.
	Ready
	// Failed: the agent's last attempt at the current spec failed.
	Failed
)

// AssignmentState classifies one Assignment against the digest it should run.
func AssignmentState(a *fleetv1.Assignment) State {
	ready := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
	// The condition's own generation says which spec the report is about: the agent
	// moves status.observedGeneration only on success, but reports failures too.
	current := ready != nil && ready.ObservedGeneration == a.Generation
	applied := a.Status.AppliedDigest != "" && a.Status.AppliedDigest == a.Spec.Artifact.Digest
	switch {
	case ready != nil && ready.Status == metav1.ConditionFalse && current:
		return Failed
	case applied && ready != nil && ready.Status == metav1.ConditionTrue && current:
		return Ready
	case applied:
		return Applied
	default:
		return Pending
	}
}

// FailureMessage is the agent's own account of a failed Assignment.
func FailureMessage(a *fleetv1.Assignment) string {
	if c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition); c != nil && c.Message != "" {
		return c.Message
	}
	return a.Status.Message
}

// Deployment counts a deployment's targeted clusters. assignments are the deployment's
// Assignments (any cluster); only those of targeted clusters count. A cluster in
// silent (its agent's heartbeat is stale) counts as applied at most, never ready: its
// last report can no longer be trusted. Failures are sorted by cluster and cut at
// meta.MaxFailures.
func Deployment(targeted []string, assignments []fleetv1.Assignment, silent map[string]bool) (meta.ClusterCounts, []meta.ClusterFailure) {
	want := make(map[string]bool, len(targeted))
	for _, c := range targeted {
		want[c] = true
	}
	counts := meta.ClusterCounts{Targeted: int32(len(targeted))}
	var failures []meta.ClusterFailure
	for i := range assignments {
		a := &assignments[i]
		cluster := a.Labels[fleetv1.ClusterLabel]
		if !want[cluster] || a.DeletionTimestamp != nil {
			continue
		}
		switch AssignmentState(a) {
		case Ready:
			counts.Applied++
			if !silent[cluster] {
				counts.Ready++
			}
		case Applied:
			counts.Applied++
		case Failed:
			counts.Failed++
			if a.Status.AppliedDigest == a.Spec.Artifact.Digest && a.Status.AppliedDigest != "" {
				counts.Applied++
			}
			failures = append(failures, meta.ClusterFailure{Cluster: cluster, Message: FailureMessage(a)})
		}
	}
	sort.Slice(failures, func(i, j int) bool { return failures[i].Cluster < failures[j].Cluster })
	if len(failures) > meta.MaxFailures {
		failures = failures[:meta.MaxFailures]
	}
	return counts, failures
}

// Assignments counts Assignments by state, for a Cluster or a ClusterGroup.
func Assignments(assignments []fleetv1.Assignment) meta.AssignmentCounts {
	var c meta.AssignmentCounts
	for i := range assignments {
		if assignments[i].DeletionTimestamp != nil {
			continue
		}
		c.Total++
		switch AssignmentState(&assignments[i]) {
		case Ready:
			c.Ready++
		case Failed:
			c.Failed++
		}
	}
	return c
}

// Add sums assignment counts.
func Add(a, b meta.AssignmentCounts) meta.AssignmentCounts {
	return meta.AssignmentCounts{Total: a.Total + b.Total, Ready: a.Ready + b.Ready, Failed: a.Failed + b.Failed}
}

// Versions counts a deployment's targeted clusters by the version their agent
// reports running: a Helm release's chart version, else the applied revision.
// Clusters that report none are left out. Most common first (ties by version), at
// most meta.MaxVersionCounts entries, so the list never grows with the fleet.
func Versions(targeted []string, assignments []fleetv1.Assignment) []meta.VersionCount {
	want := make(map[string]bool, len(targeted))
	for _, c := range targeted {
		want[c] = true
	}
	counts := map[string]int32{}
	for i := range assignments {
		a := &assignments[i]
		if !want[a.Labels[fleetv1.ClusterLabel]] || a.DeletionTimestamp != nil {
			continue
		}
		v := a.Status.AppliedRevision
		if r := a.Status.Release; r != nil && r.ChartVersion != "" {
			v = r.ChartVersion
		}
		if v != "" {
			counts[v]++
		}
	}
	if len(counts) == 0 {
		return nil
	}
	out := make([]meta.VersionCount, 0, len(counts))
	for v, n := range counts {
		out = append(out, meta.VersionCount{Version: v, Clusters: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Clusters != out[j].Clusters {
			return out[i].Clusters > out[j].Clusters
		}
		return out[i].Version < out[j].Version
	})
	if len(out) > meta.MaxVersionCounts {
		out = out[:meta.MaxVersionCounts]
	}
	return out
}
