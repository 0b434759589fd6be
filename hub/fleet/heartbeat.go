package fleet

import (
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// The agent's Lease is the heartbeat: the agent renews it every interval (10 s by
// default) and the hub reads it from its informer cache, never from the API server.
// Staleness is judged from the Lease's renewTime alone, so a renewal costs the hub no
// API call and no write.
//
// Cluster.status.lastHeartbeatTime is a coarse copy of that renewTime for people
// (`kubectl get fcluster`, `flotilla status`): it is written when the Ready condition
// changes (then it is the exact last renewal, to the second) and otherwise only when
// the renewal has moved more than the report interval (5 minutes, as kubelet reports
// node status) past the recorded value. So a healthy cluster costs one Cluster status
// write every 5 minutes, not one per renewal, and every ClusterGroup and Kustomization
// that watches Clusters is not woken by each heartbeat. While Ready is True the
// recorded time lags the real heartbeat by at most the report interval plus one
// renewal interval; the Lease has the exact time.
//
// renewTime is written by the agent with the spoke's clock: a spoke whose clock runs
// far ahead of the hub's stays Ready that much longer after it goes silent.

// Heartbeat is what the hub concludes from an agent's Lease.
type Heartbeat struct {
	// Status of the Cluster's Ready condition, with its Reason and Message. The
	// message depends only on the Lease and the grace period, not on the time of
	// the look, so that looking again without a renewal writes nothing.
	Status  metav1.ConditionStatus
	Reason  string
	Message string
	// RecheckAfter is when to look again so that a silent agent turns the Cluster
	// not Ready on time; zero when nothing but a renewal can change the verdict.
	RecheckAfter time.Duration
}

// JudgeHeartbeat decides the Ready condition from the agent's last renewal (nil when
// no agent has reported) as seen at now.
func JudgeHeartbeat(renewed *time.Time, now time.Time, grace time.Duration) Heartbeat {
	if renewed == nil {
		return Heartbeat{Status: metav1.ConditionUnknown, Reason: meta.AgentNotConnectedReason, Message: "no agent has reported yet"}
	}
	age := now.Sub(*renewed)
	if age <= grace {
		// One second past the deadline, so the look surely finds the Lease stale.
		return Heartbeat{Status: metav1.ConditionTrue, Reason: meta.HeartbeatFreshReason,
			Message: "agent heartbeat is fresh", RecheckAfter: grace - age + time.Second}
	}
	return Heartbeat{Status: metav1.ConditionFalse, Reason: meta.HeartbeatStaleReason,
		Message: fmt.Sprintf("no agent heartbeat since %s (grace period %s)", renewed.UTC().Format(time.RFC3339), grace)}
}

// RecordedHeartbeat returns the lastHeartbeatTime a Cluster should show: the renewal
// itself (to the second, as the API keeps it) when Ready changed, when none is
// recorded, or when the renewal is more than step away from the recorded time; the
// recorded time otherwise. With no renewal (the Lease is gone) the recorded time stays.
func RecordedHeartbeat(recorded *metav1.Time, renewed *time.Time, readyChanged bool, step time.Duration) *metav1.Time {
	if renewed == nil {
		return recorded
	}
	if recorded == nil || readyChanged || abs(renewed.Sub(recorded.Time)) > step {
		t := metav1.NewTime(*renewed).Rfc3339Copy()
		return &t
	}
	return recorded
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// HeartbeatGrace is how old the Lease's renewal may be before its cluster is not
// Ready: grace, or 4 × the interval the Lease says the agent renews at, whichever is
// longer, so that an agent told to renew less often is never judged by a grace made
// for a shorter interval. The interval is leaseDurationSeconds / 3 (the agent writes
// 3 × its interval, as old agents that ignore the announcement do too), or the
// announced interval on a Lease without a duration; at most
// fleetv1.MaxHeartbeatInterval, so that no Lease can stretch the grace past 20 minutes.
func HeartbeatGrace(l *coordinationv1.Lease, grace time.Duration) time.Duration {
	var every time.Duration
	if s := l.Spec.LeaseDurationSeconds; s != nil && *s > 0 {
		every = time.Duration(*s) * time.Second / 3
	} else if d, err := time.ParseDuration(l.Annotations[fleetv1.HeartbeatIntervalAnnotation]); err == nil && d > 0 {
		every = d
	}
	return max(grace, 4*min(every, fleetv1.MaxHeartbeatInterval))
}

// leaseTime is the last renewal of the Lease, or its acquisition when it was never
// renewed; nil when it has neither.
func leaseTime(l *coordinationv1.Lease) *time.Time {
	switch {
	case l.Spec.RenewTime != nil:
		return &l.Spec.RenewTime.Time
	case l.Spec.AcquireTime != nil:
		return &l.Spec.AcquireTime.Time
	}
	return nil
}
