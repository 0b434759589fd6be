// Package metrics owns the hub's Prometheus metrics beyond the sources'
// (hub/source/metrics): deployments' cluster counts, clusters' heartbeat age and
// Assignment counts, builds, artifact bytes served, and how the metrics endpoint is
// served (HTTPS, authenticated and authorised against the hub's API server).
package metrics
