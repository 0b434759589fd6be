package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// ClusterKind is the kind name.
const ClusterKind = "Cluster"

// ClusterSpec describes one registered spoke.
type ClusterSpec struct {
	// Variables are available to postBuild substitution on this cluster as ${name}.
	// +optional
	Variables map[string]string `json:"variables,omitempty"`
	// Paused stops the hub from handing this cluster new revisions.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// ClusterStatus is the health of one spoke as its agent reports it.
type ClusterStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready is True while the agent's heartbeat is fresh.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Namespace is the hub namespace that holds this cluster's Assignments.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// LastHeartbeatTime is when the agent last renewed its lease.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// AgentVersion is the version of the agent running on the cluster.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
	// KubernetesVersion is the spoke API server's version.
	// +optional
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// Assignments counts this cluster's Assignments by state.
	// +optional
	Assignments meta.AssignmentCounts `json:"assignments,omitempty"`
}

// Cluster is one member cluster of the fleet. Its labels are what placement selects on.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=fcluster;fclusters,categories=flotilla
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 46",message="a cluster name has at most 46 characters, so that its hub namespace name fits"
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.status.namespace`,priority=1
// +kubebuilder:printcolumn:name="Assignments",type=integer,JSONPath=`.status.assignments.total`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.assignments.ready`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.assignments.failed`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.lastHeartbeatTime`
// +kubebuilder:printcolumn:name="Kubernetes",type=string,JSONPath=`.status.kubernetesVersion`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ClusterSpec `json:"spec,omitempty"`
	// +optional
	Status ClusterStatus `json:"status,omitempty"`
}

// ClusterList is a list of Clusters.
// +kubebuilder:object:root=true
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}

// GetConditions returns the status conditions.
func (in *Cluster) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Cluster) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// ClusterNamespacePrefix starts the name of every cluster's hub namespace.
const ClusterNamespacePrefix = "flotilla-cluster-"

// SystemNamespace is the default namespace of Flotilla itself, on the hub (signing
// keys, trust bundle, bootstrap tokens) and on each spoke (the agent, its Secrets and
// its state). Both programs take a flag to change it.
const SystemNamespace = "flotilla-system"

// TrustConfigMapName is the ConfigMap, in the hub's system namespace and in every
// cluster namespace, that carries the signed trust bundle.
const TrustConfigMapName = "flotilla-trust"

// ClusterNamespace is the hub namespace that holds the named cluster's Assignments.
func ClusterNamespace(clusterName string) string { return ClusterNamespacePrefix + clusterName }

// AgentLeaseName is the Lease in the cluster's hub namespace that the agent renews as
// its heartbeat. Its annotations carry the agent and Kubernetes versions.
const AgentLeaseName = "flotilla-agent"

// Annotations the agent writes on its Lease.
const (
	AgentVersionAnnotation      = "fleet.flotilla.dev/agent-version"
	KubernetesVersionAnnotation = "fleet.flotilla.dev/kubernetes-version"
)

// HeartbeatIntervalAnnotation is the one annotation the hub writes on an agent's
// Lease: the interval (a Go duration, e.g. "20s") the hub asks the agent to renew
// at. The agent keeps it when it renews and adopts it when it lies within
// MinHeartbeatInterval..MaxHeartbeatInterval; otherwise it keeps its own interval.
const HeartbeatIntervalAnnotation = "fleet.flotilla.dev/heartbeat-interval"

// Bounds of an announced heartbeat interval, for the hub's flag and the agent's check.
const (
	MinHeartbeatInterval = 5 * time.Second
	MaxHeartbeatInterval = 5 * time.Minute
)
