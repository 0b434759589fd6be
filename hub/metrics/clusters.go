package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
)

// clusterCollector reports each Cluster's heartbeat age, Ready and Assignment counts
// at scrape time from the hub's cache, so the age is exact (from the Lease's
// renewTime, which the Cluster's status copies only every grace/2) and a deleted
// Cluster leaves no series behind. Series are one per cluster (five with
// the Assignment states): they grow with the fleet and nothing else.
type clusterCollector struct {
	// reader is the cache of the hub that started last: one hub runs per process,
	// except in tests, which scrape the latest.
	reader atomic.Pointer[client.Reader]
	now    func() time.Time
}

var (
	heartbeatAgeDesc = prometheus.NewDesc(ClusterHeartbeatAgeName,
		"Seconds since the cluster's agent last renewed its Lease on the hub (absent before the first renewal).",
		[]string{"cluster"}, nil)
	clusterReadyDesc = prometheus.NewDesc(ClusterReadyName,
		"1 while the cluster's Ready condition is True (its agent's heartbeat is fresh), else 0.",
		[]string{"cluster"}, nil)
	clusterAssignmentsDesc = prometheus.NewDesc(ClusterAssignmentsName,
		"The cluster's Assignments by state: total, ready, failed (Cluster.status.assignments).",
		[]string{"cluster", "state"}, nil)
	agentSkewDesc = prometheus.NewDesc(ClusterAgentSkewName,
		"Minor versions between the cluster's agent and the hub (agent minus hub); more than 1 either way is not supported.",
		[]string{"cluster"}, nil)
)

var clusters = &clusterCollector{now: time.Now}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- heartbeatAgeDesc
	ch <- clusterReadyDesc
	ch <- clusterAssignmentsDesc
	ch <- agentSkewDesc
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	rp := c.reader.Load()
	if rp == nil {
		return
	}
	r := *rp
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list fleetv1.ClusterList
	if err := r.List(ctx, &list); err != nil {
		return
	}
	now := c.now()
	for i := range list.Items {
		cl := &list.Items[i]
		ready := 0.0
		if conditions.IsTrue(cl, meta.ReadyCondition) {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(clusterReadyDesc, prometheus.GaugeValue, ready, cl.Name)
		a := cl.Status.Assignments
		ch <- prometheus.MustNewConstMetric(clusterAssignmentsDesc, prometheus.GaugeValue, float64(a.Total), cl.Name, "total")
		ch <- prometheus.MustNewConstMetric(clusterAssignmentsDesc, prometheus.GaugeValue, float64(a.Ready), cl.Name, "ready")
		ch <- prometheus.MustNewConstMetric(clusterAssignmentsDesc, prometheus.GaugeValue, float64(a.Failed), cl.Name, "failed")
		if renewed := renewal(ctx, r, cl); !renewed.IsZero() {
			ch <- prometheus.MustNewConstMetric(heartbeatAgeDesc, prometheus.GaugeValue, max(0, now.Sub(renewed).Seconds()), cl.Name)
		}
		if skew, ok := version.MinorSkew(cl.Status.AgentVersion, hubVersion()); ok {
			ch <- prometheus.MustNewConstMetric(agentSkewDesc, prometheus.GaugeValue, float64(skew), cl.Name)
		}
	}
}

// renewal is the agent's last Lease renewal, or the Cluster's coarse copy of it.
func renewal(ctx context.Context, r client.Reader, cl *fleetv1.Cluster) time.Time {
	var lease coordinationv1.Lease
	key := types.NamespacedName{Namespace: fleetv1.ClusterNamespace(cl.Name), Name: fleetv1.AgentLeaseName}
	if err := r.Get(ctx, key, &lease); err == nil && lease.Spec.RenewTime != nil {
		return lease.Spec.RenewTime.Time
	}
	if cl.Status.LastHeartbeatTime != nil {
		return cl.Status.LastHeartbeatTime.Time
	}
	return time.Time{}
}
