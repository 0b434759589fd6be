// Package metrics owns the Prometheus metrics every source controller reports
// (fetch duration, failures, artifact size), registered once with
// controller-runtime's registry so the hub's /metrics endpoint serves them.
package metrics
