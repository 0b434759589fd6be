// Package capi registers Cluster API workload clusters with the fleet: when a
// cluster.x-k8s.io Cluster is provisioned and its kubeconfig Secret exists, it creates
// the fleet Cluster (named <namespace>-<name>, with the CAPI Cluster's labels) and
// installs the agent into the workload cluster, exactly as `flotilla cluster add
// --kubeconfig` does; when the CAPI Cluster is deleted, it deregisters it.
package capi
