package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flotilla-dev/flotilla/api/version"
)

// Metric names of the agent, for dashboards and tests. Its reconcile durations are
// controller-runtime's controller_runtime_reconcile_time_seconds{controller="assignment"}.
const (
	ApplyDurationName    = "flotilla_agent_apply_duration_seconds"
	PruneDurationName    = "flotilla_agent_prune_duration_seconds"
	PrunedObjectsName    = "flotilla_agent_pruned_objects_total"
	DriftCorrectionsName = "flotilla_agent_drift_corrections_total"
	DriftDetectedName    = "flotilla_agent_drift_detected_total"
	AgentInfoName        = "flotilla_agent_info"
)

// Results of an apply or a prune.
const (
	resultSuccess = "success"
	resultFailure = "failure"
)

var (
	// Each histogram's _count is the number of applies (prunes) per result.
	applyDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    ApplyDurationName,
		Help:    "Time taken by one server-side apply of an Assignment's objects (or a drift check of them), by result.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"result"})
	pruneDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    PruneDurationName,
		Help:    "Time taken by one prune (objects a new revision dropped, or everything of a released Assignment), by result.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"result"})
	prunedObjects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: PrunedObjectsName,
		Help: "Objects the agent deleted because a revision dropped them or their Assignment was released.",
	})
	driftCorrections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: DriftCorrectionsName,
		Help: "Objects found changed on the spoke and applied again (drift detection enabled), manifests and Helm releases.",
	})
	driftDetected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: DriftDetectedName,
		Help: "Objects found changed on the spoke and left as found (drift detection mode warn, or the hub away in warn mode).",
	})
	agentInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: AgentInfoName,
		Help: "1, labelled with the agent's version.",
	}, []string{"version"})
)

func init() {
	crmetrics.Registry.MustRegister(applyDuration, pruneDuration, prunedObjects, driftCorrections, driftDetected, agentInfo)
	agentInfo.WithLabelValues(version.Version).Set(1)
}

func resultOf(err error) string {
	if err != nil {
		return resultFailure
	}
	return resultSuccess
}

// observeApply records one apply that began at start.
func observeApply(start time.Time, err error) {
	applyDuration.WithLabelValues(resultOf(err)).Observe(time.Since(start).Seconds())
}

// observePrune records one prune that began at start and deleted n objects.
func observePrune(start time.Time, n int, err error) {
	pruneDuration.WithLabelValues(resultOf(err)).Observe(time.Since(start).Seconds())
	prunedObjects.Add(float64(n))
}

// observeDrift records n drifted objects, corrected unless warnOnly.
func observeDrift(n int, warnOnly bool) {
	if warnOnly {
		driftDetected.Add(float64(n))
	} else {
		driftCorrections.Add(float64(n))
	}
}
