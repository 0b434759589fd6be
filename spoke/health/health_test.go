package health

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestCompute(t *testing.T) {
	for _, tc := range []struct {
		name   string
		obj    string
		status Status
		msg    string
	}{
		{"deployment available", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, generation: 2}
spec: {replicas: 2}
status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2}`, Current, "Deployment is available. Replicas: 2"},
		{"deployment not observed", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, generation: 3}
spec: {replicas: 2}
status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2}`, InProgress, "generation 3 not yet observed (observed 2)"},
		{"deployment unavailable", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, generation: 1}
status: {observedGeneration: 1, replicas: 1, updatedReplicas: 1}`, InProgress, "Available: 0/1"},
		{"deployment deadline exceeded", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, generation: 1}
status:
  observedGeneration: 1
  conditions: [{type: Progressing, status: "False", reason: ProgressDeadlineExceeded, message: too slow}]`, Failed, "Progress deadline exceeded: too slow"},
		{"statefulset rolling", `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s, generation: 1}
spec: {replicas: 1}
status: {observedGeneration: 1, readyReplicas: 1, currentReplicas: 1, currentRevision: a, updateRevision: b}`, InProgress, "Waiting for revision b (current a)"},
		{"daemonset scheduled", `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: s, generation: 1}
status: {observedGeneration: 1, desiredNumberScheduled: 2, currentNumberScheduled: 2, updatedNumberScheduled: 2, numberAvailable: 1, numberReady: 2}`, InProgress, "Available: 1/2"},
		{"job failed", `
apiVersion: batch/v1
kind: Job
metadata: {name: j}
status: {conditions: [{type: Failed, status: "True", reason: BackoffLimitExceeded}]}`, Failed, "Job Failed: BackoffLimitExceeded"},
		{"job running", `
apiVersion: batch/v1
kind: Job
metadata: {name: j}
status: {startTime: "2026-01-01T00:00:00Z", active: 1}`, Current, "Job in progress. success: 0, active: 1, failed: 0"},
		{"custom resource stalled", `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
status: {conditions: [{type: Stalled, status: "True", message: broken}]}`, Failed, "Stalled: broken"},
		{"custom resource not ready", `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
status: {conditions: [{type: Ready, status: "False", message: warming up}]}`, InProgress, "Ready=False: warming up"},
		{"configmap", `
apiVersion: v1
kind: ConfigMap
metadata: {name: c}`, Current, "Resource is current"},
		{"being deleted", `
apiVersion: v1
kind: ConfigMap
metadata: {name: c, deletionTimestamp: "2026-01-01T00:00:00Z"}`, InProgress, "being deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(tc.obj), &u.Object); err != nil {
				t.Fatal(err)
			}
			got := Compute(u)
			if got.Status != tc.status || got.Message != tc.msg {
				t.Errorf("got %s %q, want %s %q", got.Status, got.Message, tc.status, tc.msg)
			}
		})
	}
	if got := Compute(nil); got.Status != NotFound {
		t.Errorf("nil: %v", got)
	}
}
