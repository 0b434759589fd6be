package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// KustomizationKind is the kind name.
const KustomizationKind = "Kustomization"

// SourceReference names the source a deployment is built from.
type SourceReference struct {
	// Kind of the source.
	// +kubebuilder:validation:Enum=GitRepository;OCIRepository
	// +required
	Kind string `json:"kind"`
	// Name of the source.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the source; the Kustomization's own when empty.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// KustomizationSpec says what to build, where to place it and how the spokes apply it.
type KustomizationSpec struct {
	// SourceRef is the source to build from.
	// +required
	SourceRef SourceReference `json:"sourceRef"`
	// Path to the kustomization directory inside the source; the root when empty.
	// +optional
	// +kubebuilder:validation:Pattern="^[^\\x00]*$"
	Path string `json:"path,omitempty"`
	// Interval between builds when nothing else triggers one.
	// +kubebuilder:default="5m"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
	// RetryInterval is how soon a failed apply is retried on a spoke; the interval
	// when unset (the agent then retries sooner, with a short backoff capped at the
	// interval).
	// +optional
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`
	// Prune deletes, on each spoke, objects that a new revision dropped and every object
	// when the cluster stops being targeted.
	// +optional
	Prune bool `json:"prune,omitempty"`
	// TargetNamespace sets the namespace of every namespaced object.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	TargetNamespace string `json:"targetNamespace,omitempty"`
	// ServiceAccountName is the service account, in the target namespace on each spoke,
	// that the agent impersonates to apply.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// NamePrefix is prepended to the name of every object the build produces (and to
	// every reference to them, as kustomize's namePrefix does).
	// +optional
	// +kubebuilder:validation:MaxLength=200
	NamePrefix string `json:"namePrefix,omitempty"`
	// NameSuffix is appended to the name of every object the build produces.
	// +optional
	// +kubebuilder:validation:MaxLength=200
	NameSuffix string `json:"nameSuffix,omitempty"`
	// CommonMetadata labels and annotations are set on every object the build
	// produces (metadata only: selectors and templates are left alone). Keys the
	// agent keeps for itself and service-account token keys are refused.
	// +optional
	CommonMetadata *CommonMetadata `json:"commonMetadata,omitempty"`
	// Patches are strategic merge or JSON 6902 patches applied to the objects the
	// target selects, after the path (and its components) are built.
	// +optional
	Patches []Patch `json:"patches,omitempty"`
	// Images overrides the name, tag or digest of container images.
	// +optional
	Images []Image `json:"images,omitempty"`
	// Components are kustomize components, paths relative to spec.path, added to
	// the build. They must stay inside the source artifact.
	// +optional
	Components []string `json:"components,omitempty"`
	// HealthCheckExprs are CEL expressions that say, on each spoke, whether objects of
	// one apiVersion and kind are healthy, instead of the built-in kstatus rules.
	// They apply to the objects that spec.wait or spec.healthChecks check.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	HealthCheckExprs []meta.CustomHealthCheck `json:"healthCheckExprs,omitempty"`
	// ApplySettings are how each spoke applies, checks and keeps what was built:
	// postBuild, decryption, wait, healthChecks, timeout, force, deletionPolicy and
	// driftDetection.
	meta.ApplySettings `json:",inline"`
	// DependsOn lists Kustomizations that must be Ready on a cluster before this one
	// is applied there.
	// +optional
	DependsOn []DependencyReference `json:"dependsOn,omitempty"`
	// Placement chooses the clusters.
	// +optional
	Placement Placement `json:"placement,omitempty"`
	// Rollout limits how fast a new revision moves across the targeted clusters.
	// +optional
	Rollout *Rollout `json:"rollout,omitempty"`
	// Suspend stops building and placing while true, and every spoke leaves what it
	// runs as it is: no apply, no drift correction (drift and health are still
	// reported).
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// CommonMetadata is metadata set on every object a build produces.
type CommonMetadata struct {
	// Labels to set.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations to set.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Patch is an inline strategic merge or JSON 6902 patch and the objects it applies to.
type Patch struct {
	// Patch is the patch itself: a partial object (strategic merge) or a list of
	// JSON 6902 operations, as YAML or JSON.
	// +required
	// +kubebuilder:validation:MinLength=1
	Patch string `json:"patch"`
	// Target selects the objects to patch; a strategic merge patch without one
	// patches the object it names.
	// +optional
	Target *PatchSelector `json:"target,omitempty"`
}

// PatchSelector selects objects by group, version, kind, name, namespace, labels or
// annotations; name and namespace are regular expressions.
type PatchSelector struct {
	// Group of the objects; an empty field of the selector matches anything.
	// +optional
	Group string `json:"group,omitempty"`
	// Version of the objects.
	// +optional
	Version string `json:"version,omitempty"`
	// Kind of the objects.
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the objects, a regular expression.
	// +optional
	Name string `json:"name,omitempty"`
	// Namespace of the objects, a regular expression.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// LabelSelector is a label selector string (app=web,tier!=db).
	// +optional
	LabelSelector string `json:"labelSelector,omitempty"`
	// AnnotationSelector is an annotation selector string.
	// +optional
	AnnotationSelector string `json:"annotationSelector,omitempty"`
}

// Image overrides one container image wherever it is used.
type Image struct {
	// Name is the image to override, without tag or digest.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// NewName replaces the image name.
	// +optional
	NewName string `json:"newName,omitempty"`
	// NewTag replaces the tag.
	// +optional
	NewTag string `json:"newTag,omitempty"`
	// Digest replaces the tag with a digest (sha256:...); it wins over newTag.
	// +optional
	Digest string `json:"digest,omitempty"`
}

// DependencyReference names another Kustomization.
type DependencyReference struct {
	// Name of the Kustomization.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the Kustomization; the dependent's own when empty.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// KustomizationStatus is the build and the fleet-wide rollout of a Kustomization.
type KustomizationStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the built, signed artifact handed to the targeted clusters.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// LastAttemptedRevision is the source revision of the last build, successful or not.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	// LastAppliedRevision is the source revision of the artifact the clusters are given.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// Clusters counts the targeted clusters by rollout state.
	// +optional
	Clusters meta.ClusterCounts `json:"clusters,omitempty"`
	// Failures names failed clusters, at most 32 of them.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Failures []meta.ClusterFailure `json:"failures,omitempty"`
	// Rollout is where the rollout of the current revision stands.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// LastHandledReconcileAt is the last value of the reconcile-requested-at annotation handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// Kustomization builds a path of a source with kustomize on the hub and applies the
// result on every cluster its placement selects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ks,categories=flotilla
// +kubebuilder:printcolumn:name="Targeted",type=integer,JSONPath=`.status.clusters.targeted`
// +kubebuilder:printcolumn:name="Applied",type=integer,JSONPath=`.status.clusters.applied`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.clusters.ready`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.clusters.failed`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Kustomization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec KustomizationSpec `json:"spec"`
	// +optional
	Status KustomizationStatus `json:"status,omitempty"`
}

// KustomizationList is a list of Kustomizations.
// +kubebuilder:object:root=true
type KustomizationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Kustomization `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Kustomization{}, &KustomizationList{})
}

// GetConditions returns the status conditions.
func (in *Kustomization) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Kustomization) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
