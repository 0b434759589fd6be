package engine

import (
	"fmt"
	"strings"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollout"
)

// State is which kstatus triple a deployment shows.
type State string

// States a deployment can be left in by a rollup.
const (
	// Ready: every targeted cluster runs the revision Ready (or none is targeted).
	Ready State = "Ready"
	// Reconciling: the rollout is under way or waits for approval.
	Reconciling State = "Reconciling"
	// Failed: clusters failed or went silent; the next report may fix it.
	Failed State = "Failed"
	// Stalled: the rollout stopped on a failure; it moves on once the user acts.
	Stalled State = "Stalled"
)

// Condition is the outcome of a rollup: which conditions to set, and why.
type Condition struct {
	State   State
	Reason  string
	Message string
}

// Apply sets the conditions on the deployment.
func (c Condition) Apply(o conditions.Object) {
	switch c.State {
	case Ready:
		conditions.MarkReady(o, c.Reason, c.Message)
	case Stalled:
		conditions.MarkStalled(o, c.Reason, c.Message)
	case Failed:
		conditions.MarkFailed(o, c.Reason, c.Message)
	default:
		conditions.MarkReconciling(o, c.Reason, c.Message)
	}
}

// Rollup is what the ready/stalled decision reads about one deployment.
type Rollup struct {
	// Kind, Namespace and Name of the deployment, for the approval hint.
	Kind, Namespace, Name string
	// Revision being rolled out.
	Revision string
	// RolloutConfigured is true when the deployment has spec.rollout: only then does a
	// failed cluster stop the rollout.
	RolloutConfigured bool
	Clusters          meta.ClusterCounts
	// Failures are sorted by cluster, as rollup.Deployment returns them.
	Failures []meta.ClusterFailure
	Plan     rollout.Plan
	// Silent are the targeted clusters whose heartbeat is stale, sorted.
	Silent []string
}

// Decide says what a deployment's conditions are after a rollup. It is a pure
// function so that every branch is tested without an API server.
func Decide(r Rollup) Condition {
	c, rev, plan := r.Clusters, r.Revision, r.Plan
	switch {
	case r.RolloutConfigured && len(plan.Failed) > 0:
		return Condition{Stalled, meta.RolloutStalledReason, fmt.Sprintf(
			"rollout of revision %s stopped: cluster %s failed: %s; %d clusters wait on their previous revision",
			rev, plan.Failed[0], failureOf(r.Failures, plan.Failed[0]), plan.Waiting)}
	case plan.PausedAfter != "":
		cmd := fmt.Sprintf("flotilla rollout approve %s %s", strings.ToLower(r.Kind), r.Name)
		if r.Namespace != "" { // a cluster-scoped owner (AgentRollout) has none
			cmd += " -n " + r.Namespace
		}
		return Condition{Reconciling, meta.RolloutPausedReason, fmt.Sprintf(
			"rollout of revision %s paused after stage %s: %d clusters wait; approve with `%s`",
			rev, plan.PausedAfter, plan.Waiting, cmd)}
	case c.Failed > 0:
		msg := fmt.Sprintf("%d of %d clusters failed revision %s", c.Failed, c.Targeted, rev)
		if len(r.Failures) > 0 {
			msg += fmt.Sprintf("; %s: %s", r.Failures[0].Cluster, r.Failures[0].Message)
		}
		return Condition{Failed, meta.ClustersFailedReason, msg}
	case c.Targeted == 0:
		return Condition{Ready, meta.SucceededReason, "built revision " + rev + "; no cluster matches the placement"}
	case len(r.Silent) > 0 && c.Ready+int32(len(r.Silent)) >= c.Targeted && plan.Waiting == 0:
		return Condition{Failed, meta.HeartbeatStaleReason, fmt.Sprintf(
			"revision %s is ready on %d of %d clusters; no heartbeat from %s", rev, c.Ready, c.Targeted, clusterList(r.Silent))}
	case c.Ready == c.Targeted:
		return Condition{Ready, meta.SucceededReason, fmt.Sprintf("revision %s is ready on %d of %d clusters", rev, c.Ready, c.Targeted)}
	default:
		msg := fmt.Sprintf("revision %s is ready on %d of %d clusters", rev, c.Ready, c.Targeted)
		if plan.Waiting > 0 {
			msg += fmt.Sprintf(" (%d updating, %d waiting)", plan.Updating, plan.Waiting)
		}
		if len(r.Silent) > 0 {
			// A cluster whose agent stopped can hold the rollout: say which.
			msg += "; no heartbeat from " + clusterList(r.Silent)
		}
		return Condition{Reconciling, meta.RolloutInProgressReason, msg}
	}
}

// listedClusters is how many clusters a condition message names at most: a
// message stays the same size however many clusters are silent.
const listedClusters = 5

// clusterList names the first listedClusters of names and counts the rest.
func clusterList(names []string) string {
	if len(names) <= listedClusters {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:listedClusters], ", "), len(names)-listedClusters)
}

func failureOf(failures []meta.ClusterFailure, cluster string) string {
	for _, f := range failures {
		if f.Cluster == cluster {
			return f.Message
		}
	}
	return "see its Assignment"
}
