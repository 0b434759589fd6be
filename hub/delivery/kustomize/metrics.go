package kustomize

import (
	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// BuildsMetric counts kustomize builds: a build runs once per (source digest, path),
// however many clusters the result goes to, so a fleet-wide commit moves it by the
// number of distinct artifacts.
const BuildsMetric = "flotilla_kustomize_builds_total"

var builds = prometheus.NewCounter(prometheus.CounterOpts{
	Name: BuildsMetric,
	Help: "Kustomize builds run by the hub (cache misses), successful or not.",
})

func init() { crmetrics.Registry.MustRegister(builds) }
