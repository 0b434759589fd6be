// Package fleet owns the hub's view of its clusters: each Cluster's hub namespace,
// heartbeat and Assignment counts, each ClusterGroup's rollup, and the release of
// Assignments whose deployment or cluster is gone.
package fleet
