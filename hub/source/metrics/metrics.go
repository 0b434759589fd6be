package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	fetchDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flotilla_source_fetch_duration_seconds",
		Help: "Time taken by one fetch of a source (clone, pull or index download), successful or not.",
		// Fetches range from a cached index (milliseconds) to a large clone (minutes).
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"kind"})
	fetchFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flotilla_source_fetch_failures_total",
		Help: "Fetches of a source that failed.",
	}, []string{"kind"})
	artifactSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flotilla_source_artifact_size_bytes",
		Help: "Size of the artifact a source currently serves.",
	}, []string{"kind", "namespace", "name"})
)

func init() {
	crmetrics.Registry.MustRegister(fetchDuration, fetchFailures, artifactSize)
}

// ObserveFetch records one fetch of a source of kind that began at start; err is
// its outcome.
func ObserveFetch(kind string, start time.Time, err error) {
	fetchDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		fetchFailures.WithLabelValues(kind).Inc()
	}
}

// SetArtifactSize records the size of the artifact a source serves.
func SetArtifactSize(kind, namespace, name string, size int64) {
	artifactSize.WithLabelValues(kind, namespace, name).Set(float64(size))
}

// DeleteArtifactSize forgets a deleted source, so its series does not linger.
func DeleteArtifactSize(kind, namespace, name string) {
	artifactSize.DeleteLabelValues(kind, namespace, name)
}
