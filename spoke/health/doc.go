// Package health says whether a live object is healthy, with the kstatus rules
// (sigs.k8s.io/cli-utils/pkg/kstatus) for the workload kinds and for objects that
// report conditions, written out here so that the agent does not link kubectl's tree.
package health
