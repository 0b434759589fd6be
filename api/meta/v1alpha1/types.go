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

// PostBuild substitutes ${var} and ${var:=default} in the built manifests, on each
// spoke, so that one artifact serves every cluster.
type PostBuild struct {
	// Substitute maps variable names to values.
	// +optional
	Substitute map[string]string `json:"substitute,omitempty"`
	// SubstituteFrom reads more variables from ConfigMaps and Secrets on the spoke, in
	// the target namespace, as the impersonated service account. Later entries win;
	// Substitute wins over all of them.
	// +optional
	SubstituteFrom []SubstituteReference `json:"substituteFrom,omitempty"`
}

// SubstituteReference names a ConfigMap or Secret holding substitution variables.
type SubstituteReference struct {
	// Kind of the object.
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	// +required
	Kind string `json:"kind"`
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Optional lets the build go on when the object does not exist.
	// +optional
	Optional bool `json:"optional,omitempty"`
}

// Decryption decrypts SOPS-encrypted Secrets on the spoke, with keys that never
// leave it.
type Decryption struct {
	// Provider of the decryption.
	// +kubebuilder:validation:Enum=sops
	// +required
	Provider string `json:"provider"`
	// SecretRef names the Secret, on the spoke in the agent's namespace, holding the
	// age (*.agekey) and OpenPGP (*.asc) private keys.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// ObjectReference names one object to health-check on the spoke.
type ObjectReference struct {
	// APIVersion of the object.
	// +required
	APIVersion string `json:"apiVersion"`
	// Kind of the object.
	// +required
	Kind string `json:"kind"`
	// Name of the object.
	// +required
	Name string `json:"name"`
	// Namespace of the object; cluster-scoped when empty.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// CustomHealthCheck gives the health of objects of one apiVersion and kind by CEL
// expressions over the object (its top-level fields are the variables: status,
// spec, metadata...). The agent evaluates inProgress, then failed, then current; the
// first that is true gives the status, and none true means InProgress. An object
// whose status.observedGeneration is behind its generation is InProgress first.
type CustomHealthCheck struct {
	// APIVersion of the objects (group/version, or version for the core group).
	// +required
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`
	// Kind of the objects.
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Current is true when the object is healthy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Current string `json:"current"`
	// InProgress is true while the object is on its way.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	InProgress string `json:"inProgress,omitempty"`
	// Failed is true when the object cannot get healthy.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Failed string `json:"failed,omitempty"`
}

// DriftDetection says what the agent does about changes made by hand on a spoke.
type DriftDetection struct {
	// Mode: Correct restores the declared state and reports it; Warn only reports;
	// Disabled does neither.
	// +kubebuilder:validation:Enum=Correct;Warn;Disabled
	// +kubebuilder:default=Correct
	// +optional
	Mode string `json:"mode,omitempty"`
}

// Drift detection modes.
const (
	DriftCorrect  = "Correct"
	DriftWarn     = "Warn"
	DriftDisabled = "Disabled"
)

// Deletion policies: what happens on a spoke to a deployment's objects when it is
// deleted or the cluster is no longer targeted.
const (
	// DeletionPolicyMirrorPrune deletes when prune is on, orphans otherwise.
	DeletionPolicyMirrorPrune = "MirrorPrune"
	// DeletionPolicyDelete always deletes.
	DeletionPolicyDelete = "Delete"
	// DeletionPolicyOrphan always leaves the objects in place.
	DeletionPolicyOrphan = "Orphan"
)

// ApplySettings are how a spoke applies, checks and keeps a deployment. The hub
// copies them from the Kustomization into every Assignment.
type ApplySettings struct {
	// PostBuild variable substitution.
	// +optional
	PostBuild *PostBuild `json:"postBuild,omitempty"`
	// Decryption of SOPS-encrypted Secrets.
	// +optional
	Decryption *Decryption `json:"decryption,omitempty"`
	// Wait for every applied object to become healthy (kstatus) before Ready.
	// +optional
	Wait bool `json:"wait,omitempty"`
	// HealthChecks lists more objects that must be healthy before Ready.
	// +optional
	HealthChecks []ObjectReference `json:"healthChecks,omitempty"`
	// Timeout for applying and for health checks; a stuck rollout turns Ready=False
	// after it.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Force recreates objects whose immutable fields changed.
	// +optional
	Force bool `json:"force,omitempty"`
	// Adopt lets the deployment take over objects that exist on the spoke already and
	// that no other deployment applied. Without it such an object is a conflict and
	// is left as it is. An object another deployment applied is never taken over.
	// +optional
	Adopt bool `json:"adopt,omitempty"`
	// DeletionPolicy: MirrorPrune (default), Delete or Orphan.
	// +kubebuilder:validation:Enum=MirrorPrune;Delete;Orphan
	// +optional
	DeletionPolicy string `json:"deletionPolicy,omitempty"`
	// DriftDetection of hand-made changes on the spoke.
	// +optional
	DriftDetection *DriftDetection `json:"driftDetection,omitempty"`
}

// ClusterNameVariable is the built-in substitution variable naming the cluster.
const ClusterNameVariable = "cluster_name"
