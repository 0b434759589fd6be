package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// ClusterGroupKind is the kind name.
const ClusterGroupKind = "ClusterGroup"

// ClusterGroupSpec selects the group's members.
type ClusterGroupSpec struct {
	// ClusterSelector selects member Clusters by label; an empty selector selects all.
	// +required
	ClusterSelector metav1.LabelSelector `json:"clusterSelector"`
}

// ClusterMemberCounts counts a group's member clusters.
type ClusterMemberCounts struct {
	// Total number of member clusters.
	// +optional
	Total int32 `json:"total,omitempty"`
	// Ready is the number of members whose agent heartbeat is fresh.
	// +optional
	Ready int32 `json:"ready,omitempty"`
}

// ClusterGroupStatus rolls up the group's clusters and their Assignments.
type ClusterGroupStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Clusters counts the member clusters.
	// +optional
	Clusters ClusterMemberCounts `json:"clusters,omitempty"`
	// Assignments counts the members' Assignments by state.
	// +optional
	Assignments meta.AssignmentCounts `json:"assignments,omitempty"`
}

// ClusterGroup is a named, label-selected set of Clusters.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cgroup;cgroups,categories=flotilla
// +kubebuilder:printcolumn:name="Clusters",type=integer,JSONPath=`.status.clusters.total`
// +kubebuilder:printcolumn:name="Clusters-Ready",type=integer,JSONPath=`.status.clusters.ready`
// +kubebuilder:printcolumn:name="Assignments",type=integer,JSONPath=`.status.assignments.total`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.assignments.failed`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type ClusterGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ClusterGroupSpec `json:"spec"`
	// +optional
	Status ClusterGroupStatus `json:"status,omitempty"`
}

// ClusterGroupList is a list of ClusterGroups.
// +kubebuilder:object:root=true
type ClusterGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterGroup `json:"items"`
}

// GetConditions returns the status conditions.
func (in *ClusterGroup) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *ClusterGroup) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
