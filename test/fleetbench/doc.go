// Package fleetbench measures the hub at fleet scale (make bench-fleet): a real hub
// with its own API server and etcd, and N simulated clusters in one process, each
// registered with a bootstrap token and running the hub side of an agent (its own
// credential, a watch of its hub namespace, Lease heartbeats, verified artifact
// downloads, status writes). What would be applied lands in a sink. It prints
// rollout latency, builds, the hub's memory and CPU, API request rates, etcd size and
// artifact bytes served.
package fleetbench
