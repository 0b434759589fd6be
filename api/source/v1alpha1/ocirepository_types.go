package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// OCIRepositoryKind is the kind name.
const OCIRepositoryKind = "OCIRepository"

// OCIRepositoryRef pins what to pull: one of tag, semver or digest.
// +kubebuilder:validation:XValidation:rule="[has(self.tag), has(self.semver), has(self.digest)].filter(x, x).size() <= 1",message="set at most one of tag, semver and digest"
type OCIRepositoryRef struct {
	// Tag to pull; latest when nothing is set.
	// +optional
	Tag string `json:"tag,omitempty"`
	// SemVer range; the newest matching tag is pulled.
	// +optional
	SemVer string `json:"semver,omitempty"`
	// Digest to pull, sha256:<hex>.
	// +optional
	// +kubebuilder:validation:Pattern="^sha256:[a-f0-9]{64}$"
	Digest string `json:"digest,omitempty"`
}

// Layer operations of spec.layerSelector.
const (
	// OCILayerExtract unpacks the selected layer (a tar.gz) into the artifact.
	OCILayerExtract = "extract"
	// OCILayerCopy stores the selected layer as it is, as one file in the artifact.
	OCILayerCopy = "copy"
)

// OCILayerSelector says which layer of the OCI artifact is the content and what to do with it.
type OCILayerSelector struct {
	// MediaType of the layer to take; the first layer with it is used. The first
	// layer of the manifest when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	MediaType string `json:"mediaType,omitempty"`
	// Operation is extract (unpack the tar.gz layer, the default) or copy (keep the
	// layer's bytes as they are, as one file named after the layer's digest).
	// +optional
	// +kubebuilder:validation:Enum=extract;copy
	Operation string `json:"operation,omitempty"`
}

// OCIRepositorySpec says which OCI artifact to pull.
type OCIRepositorySpec struct {
	// URL of the repository, oci://host/path.
	// +required
	// +kubebuilder:validation:Pattern="^oci://.+$"
	URL string `json:"url"`
	// Ref pins the tag, semver range or digest.
	// +optional
	Ref *OCIRepositoryRef `json:"ref,omitempty"`
	// LayerSelector picks the layer that holds the content, by media type, and says
	// whether to extract or copy it. The first layer, extracted, when absent.
	// +optional
	LayerSelector *OCILayerSelector `json:"layerSelector,omitempty"`
	// SecretRef names a Secret in the same namespace with username and password (and
	// optionally ca.crt), or one of type kubernetes.io/dockerconfigjson whose
	// .dockerconfigjson entry for the registry's host is used.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// Insecure allows plain HTTP to the registry.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// Interval between pulls.
	// +kubebuilder:default="5m"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
	// Timeout for one pull.
	// +kubebuilder:default="60s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Suspend stops pulling while true.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// OCIRepositoryStatus is what the hub last pulled.
type OCIRepositoryStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, ArtifactInStorage.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the pulled content, stored and served by the hub. Its revision is
	// <tag>@sha256:<manifest digest>.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// LastHandledReconcileAt is the last value of the reconcile-requested-at annotation handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// OCIRepository is an OCI artifact the hub pulls into artifacts.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ocirepo,categories=flotilla
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.artifact.revision`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type OCIRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec OCIRepositorySpec `json:"spec"`
	// +optional
	Status OCIRepositoryStatus `json:"status,omitempty"`
}

// OCIRepositoryList is a list of OCIRepositories.
// +kubebuilder:object:root=true
type OCIRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OCIRepository `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OCIRepository{}, &OCIRepositoryList{})
}

// GetConditions returns the status conditions.
func (in *OCIRepository) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *OCIRepository) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
