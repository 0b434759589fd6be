package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Artifact is a tar.gz produced by the hub, addressed by its digest.
type Artifact struct {
	// URL is where the hub serves the artifact.
	// +required
	URL string `json:"url"`
	// Revision names what the artifact was made from, e.g. main@sha1:<40 hex>.
	// +required
	Revision string `json:"revision"`
	// Digest is sha256:<hex> of the tar.gz file.
	// +required
	// +kubebuilder:validation:Pattern="^sha256:[a-f0-9]{64}$"
	Digest string `json:"digest"`
	// Size in bytes of the tar.gz file.
	// +optional
	Size *int64 `json:"size,omitempty"`
	// LastUpdateTime is when the artifact was last produced.
	// +required
	LastUpdateTime metav1.Time `json:"lastUpdateTime"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the referent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ClusterCounts are the per-deployment rollout counts over the targeted clusters.
type ClusterCounts struct {
	// Targeted is the number of clusters the placement selects.
	// +optional
	Targeted int32 `json:"targeted,omitempty"`
	// Applied is the number of clusters running the current artifact.
	// +optional
	Applied int32 `json:"applied,omitempty"`
	// Ready is the number of clusters that applied the current artifact and are healthy.
	// +optional
	Ready int32 `json:"ready,omitempty"`
	// Failed is the number of clusters whose last attempt failed.
	// +optional
	Failed int32 `json:"failed,omitempty"`
}

// ClusterFailure tells why one cluster failed.
type ClusterFailure struct {
	// Cluster is the name of the failed Cluster.
	Cluster string `json:"cluster"`
	// Message is what the cluster's agent reported.
	Message string `json:"message"`
}

// MaxFailures bounds status.failures, whatever the fleet's size.
const MaxFailures = 32

// AssignmentCounts summarise Assignments (on a Cluster or a ClusterGroup).
type AssignmentCounts struct {
	// Total number of Assignments.
	// +optional
	Total int32 `json:"total,omitempty"`
	// Ready is the number of Assignments whose agent reports Ready=True.
	// +optional
	Ready int32 `json:"ready,omitempty"`
	// Failed is the number of Assignments whose agent reports Ready=False.
	// +optional
	Failed int32 `json:"failed,omitempty"`
}
