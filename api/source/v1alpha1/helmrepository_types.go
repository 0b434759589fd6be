package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// HelmRepositoryKind is the kind name.
const HelmRepositoryKind = "HelmRepository"

// HelmRepositorySpec says where a chart repository is.
type HelmRepositorySpec struct {
	// URL of the repository: https:// or http:// for an index, oci:// for a registry.
	// +required
	// +kubebuilder:validation:Pattern="^(https?|oci)://.+$"
	URL string `json:"url"`
	// Type is default (an HTTP index.yaml) or oci.
	// +kubebuilder:validation:Enum=default;oci
	// +kubebuilder:default=default
	// +optional
	Type string `json:"type,omitempty"`
	// SecretRef names a Secret with username and password, or ca.crt.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// Interval between index fetches.
	// +kubebuilder:default="10m"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
	// Timeout for one fetch.
	// +kubebuilder:default="60s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Suspend stops fetching while true.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// HelmRepositoryStatus is what the hub last fetched.
type HelmRepositoryStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, ArtifactInStorage.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the repository index (default type); empty for oci.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// LastHandledReconcileAt is the last value of the reconcile-requested-at annotation handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// HelmRepository is a Helm chart repository the hub fetches charts from.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=helmrepo,categories=flotilla
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type HelmRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec HelmRepositorySpec `json:"spec"`
	// +optional
	Status HelmRepositoryStatus `json:"status,omitempty"`
}

// HelmRepositoryList is a list of HelmRepositories.
// +kubebuilder:object:root=true
type HelmRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HelmRepository `json:"items"`
}

func init() {
	SchemeBuilder.Register(&HelmRepository{}, &HelmRepositoryList{})
}

// GetConditions returns the status conditions.
func (in *HelmRepository) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *HelmRepository) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
