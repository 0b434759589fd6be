package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Status is an object's kstatus.
type Status string

const (
	// Current: the object reached the state its spec asks for.
	Current Status = "Current"
	// InProgress: the object is still on its way; waiting may help.
	InProgress Status = "InProgress"
	// Failed: the object says it cannot get there; waiting will not help.
	Failed Status = "Failed"
	// NotFound: the object does not exist.
	NotFound Status = "NotFound"
)

// Result is the status of one object and why, in the words kstatus uses.
type Result struct {
	Status  Status
	Message string
}

// Compute returns the kstatus of a live object. Kinds it knows nothing about are
// Current unless their conditions (Ready, Stalled, Reconciling) or their
// observedGeneration say otherwise.
func Compute(u *unstructured.Unstructured) Result {
	if u == nil {
		return Result{NotFound, "not found"}
	}
	if !u.GetDeletionTimestamp().IsZero() {
		return Result{InProgress, "being deleted"}
	}
	if og, gen := intField(u, -1, "status", "observedGeneration"), intField(u, 0, "metadata", "generation"); og >= 0 && og < gen {
		return Result{InProgress, fmt.Sprintf("generation %d not yet observed (observed %d)", gen, og)}
	}
	gk := u.GroupVersionKind().GroupKind()
	switch gk.Group + "/" + gk.Kind {
	case "apps/Deployment":
		return deployment(u)
	case "apps/StatefulSet":
		return statefulSet(u)
	case "apps/DaemonSet":
		return daemonSet(u)
	case "apps/ReplicaSet":
		return replicaSet(u)
	case "batch/Job":
		return job(u)
	case "/Pod":
		return pod(u)
	case "/PersistentVolumeClaim":
		if phase := str(u, "status", "phase"); phase != "Bound" {
			return Result{InProgress, "PVC is not Bound, phase " + phase}
		}
		return Result{Current, "PVC is Bound"}
	case "/Namespace":
		if phase := str(u, "status", "phase"); phase != "" && phase != "Active" {
			return Result{InProgress, "Namespace is " + phase}
		}
		return Result{Current, "Namespace is Active"}
	case "apiextensions.k8s.io/CustomResourceDefinition":
		if c := condition(u, "Established"); c.status != "True" {
			return Result{InProgress, "CRD is not Established"}
		}
		return Result{Current, "CRD is Established"}
	}
	return generic(u)
}

// generic reads the conditions every kstatus-aware controller writes.
func generic(u *unstructured.Unstructured) Result {
	if c := condition(u, "Stalled"); c.status == "True" {
		return Result{Failed, "Stalled: " + c.text()}
	}
	if c := condition(u, "Reconciling"); c.status == "True" {
		return Result{InProgress, "Reconciling: " + c.text()}
	}
	switch c := condition(u, "Ready"); c.status {
	case "False":
		return Result{InProgress, "Ready=False: " + c.text()}
	case "Unknown":
		return Result{InProgress, "Ready=Unknown: " + c.text()}
	}
	return Result{Current, "Resource is current"}
}

func deployment(u *unstructured.Unstructured) Result {
	replicas := intField(u, 1, "spec", "replicas")
	if c := condition(u, "Progressing"); c.status == "False" && c.reason == "ProgressDeadlineExceeded" {
		return Result{Failed, "Progress deadline exceeded: " + c.message}
	}
	updated := intField(u, 0, "status", "updatedReplicas")
	current := intField(u, 0, "status", "replicas")
	ready := intField(u, 0, "status", "readyReplicas")
	available := intField(u, 0, "status", "availableReplicas")
	switch {
	case updated < replicas:
		return Result{InProgress, fmt.Sprintf("Updated: %d/%d", updated, replicas)}
	case current > updated:
		return Result{InProgress, fmt.Sprintf("Pending termination: %d", current-updated)}
	case available < replicas:
		return Result{InProgress, fmt.Sprintf("Available: %d/%d", available, replicas)}
	case ready < replicas:
		return Result{InProgress, fmt.Sprintf("Ready: %d/%d", ready, replicas)}
	}
	if c := condition(u, "Available"); c.status == "False" {
		return Result{InProgress, "Deployment not Available: " + c.message}
	}
	return Result{Current, fmt.Sprintf("Deployment is available. Replicas: %d", current)}
}

func replicaSet(u *unstructured.Unstructured) Result {
	replicas := intField(u, 1, "spec", "replicas")
	if available := intField(u, 0, "status", "availableReplicas"); available < replicas {
		return Result{InProgress, fmt.Sprintf("Available: %d/%d", available, replicas)}
	}
	if ready := intField(u, 0, "status", "readyReplicas"); ready < replicas {
		return Result{InProgress, fmt.Sprintf("Ready: %d/%d", ready, replicas)}
	}
	return Result{Current, fmt.Sprintf("ReplicaSet is available. Replicas: %d", replicas)}
}

func statefulSet(u *unstructured.Unstructured) Result {
	replicas := intField(u, 1, "spec", "replicas")
	ready := intField(u, 0, "status", "readyReplicas")
	current := intField(u, 0, "status", "currentReplicas")
	if ready < replicas {
		return Result{InProgress, fmt.Sprintf("Ready: %d/%d", ready, replicas)}
	}
	if str(u, "spec", "updateStrategy", "type") == "OnDelete" {
		return Result{Current, fmt.Sprintf("StatefulSet is ready (OnDelete). Replicas: %d", ready)}
	}
	partition := intField(u, 0, "spec", "updateStrategy", "rollingUpdate", "partition")
	if partition > 0 {
		if updated := intField(u, 0, "status", "updatedReplicas"); updated < replicas-partition {
			return Result{InProgress, fmt.Sprintf("Updated: %d/%d (partition %d)", updated, replicas-partition, partition)}
		}
		return Result{Current, fmt.Sprintf("Partitioned rollout complete. Updated: %d", replicas-partition)}
	}
	if current < replicas {
		return Result{InProgress, fmt.Sprintf("Current: %d/%d", current, replicas)}
	}
	if cr, ur := str(u, "status", "currentRevision"), str(u, "status", "updateRevision"); cr != ur {
		return Result{InProgress, fmt.Sprintf("Waiting for revision %s (current %s)", ur, cr)}
	}
	return Result{Current, fmt.Sprintf("All replicas scheduled as expected. Replicas: %d", replicas)}
}

func daemonSet(u *unstructured.Unstructured) Result {
	desired := intField(u, 0, "status", "desiredNumberScheduled")
	scheduled := intField(u, 0, "status", "currentNumberScheduled")
	updated := intField(u, 0, "status", "updatedNumberScheduled")
	available := intField(u, 0, "status", "numberAvailable")
	ready := intField(u, 0, "status", "numberReady")
	if intField(u, -1, "status", "desiredNumberScheduled") < 0 {
		return Result{InProgress, "Missing .status.desiredNumberScheduled"}
	}
	switch {
	case scheduled < desired:
		return Result{InProgress, fmt.Sprintf("Scheduled: %d/%d", scheduled, desired)}
	case updated < desired:
		return Result{InProgress, fmt.Sprintf("Updated: %d/%d", updated, desired)}
	case available < desired:
		return Result{InProgress, fmt.Sprintf("Available: %d/%d", available, desired)}
	case ready < desired:
		return Result{InProgress, fmt.Sprintf("Ready: %d/%d", ready, desired)}
	}
	return Result{Current, fmt.Sprintf("All replicas scheduled as expected. Replicas: %d", desired)}
}

// job follows kstatus: a Job that failed is Failed; one that completed, or has
// started, is Current (waiting for a long-running Job to finish is not the point
// of a health check).
func job(u *unstructured.Unstructured) Result {
	if c := condition(u, "Failed"); c.status == "True" {
		return Result{Failed, "Job Failed: " + c.text()}
	}
	if c := condition(u, "Complete"); c.status == "True" {
		return Result{Current, "Job Completed"}
	}
	if str(u, "status", "startTime") == "" {
		return Result{InProgress, "Job not started"}
	}
	return Result{Current, fmt.Sprintf("Job in progress. success: %d, active: %d, failed: %d",
		intField(u, 0, "status", "succeeded"), intField(u, 0, "status", "active"), intField(u, 0, "status", "failed"))}
}

func pod(u *unstructured.Unstructured) Result {
	switch str(u, "status", "phase") {
	case "Succeeded":
		return Result{Current, "Pod has completed successfully"}
	case "Failed":
		return Result{Failed, "Pod has failed"}
	case "Running":
		if c := condition(u, "Ready"); c.status == "True" {
			return Result{Current, "Pod is Ready"}
		}
		return Result{InProgress, "Pod is running but is not Ready"}
	}
	if c := condition(u, "PodScheduled"); c.status == "False" {
		return Result{InProgress, "Pod not scheduled: " + c.text()}
	}
	return Result{InProgress, "Pod is " + strings.ToLower(or(str(u, "status", "phase"), "pending"))}
}

type cond struct{ status, reason, message string }

func (c cond) text() string {
	switch {
	case c.message != "":
		return c.message
	default:
		return c.reason
	}
}

func condition(u *unstructured.Unstructured, typ string) cond {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]interface{})
		if !ok || m["type"] != typ {
			continue
		}
		s, _ := m["status"].(string)
		r, _ := m["reason"].(string)
		msg, _ := m["message"].(string)
		return cond{status: s, reason: r, message: msg}
	}
	return cond{}
}

func str(u *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

// intField reads an integer, which unstructured objects hold as int64 (or float64
// when they were decoded by hand), and def when it is absent.
func intField(u *unstructured.Unstructured, def int64, fields ...string) int64 {
	v, found, _ := unstructured.NestedFieldNoCopy(u.Object, fields...)
	if !found {
		return def
	}
	switch n := v.(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return def
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
