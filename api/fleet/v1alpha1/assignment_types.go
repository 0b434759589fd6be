package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// AssignmentKind is the kind name.
const AssignmentKind = "Assignment"

// Labels the hub puts on every Assignment, so that a deployment finds its Assignments
// and a cluster finds its own without reading them all.
const (
	OwnerKindLabel      = "fleet.flotilla.dev/owner-kind"
	OwnerNamespaceLabel = "fleet.flotilla.dev/owner-namespace"
	OwnerNameLabel      = "fleet.flotilla.dev/owner-name"
	ClusterLabel        = "fleet.flotilla.dev/cluster"
)

// AssignmentFinalizer keeps a deleted Assignment until its agent has pruned or
// orphaned what it applied (Released=True), or its Cluster is gone.
const AssignmentFinalizer = "fleet.flotilla.dev/release"

// SignedArtifact is what the agent downloads, and what it checks before applying.
type SignedArtifact struct {
	// URL the agent downloads the tar.gz from.
	// +required
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Digest is sha256:<hex> of the tar.gz.
	// +required
	// +kubebuilder:validation:Pattern="^sha256:[a-f0-9]{64}$"
	Digest string `json:"digest"`
	// Signature is the base64 ed25519 signature of the digest string by the hub.
	// +required
	// +kubebuilder:validation:MinLength=1
	Signature string `json:"signature"`
	// Revision names what the artifact was built from, for people.
	// +optional
	Revision string `json:"revision,omitempty"`
}

// DeploymentReference names the Kustomization or HelmRelease an Assignment comes from.
// It is a field rather than a metadata.ownerReference because Kubernetes forbids
// owner references across namespaces.
type DeploymentReference struct {
	// APIVersion of the owner.
	// +required
	APIVersion string `json:"apiVersion"`
	// Kind of the owner.
	// +required
	// +kubebuilder:validation:Enum=Kustomization;HelmRelease;Tenant;AgentRollout
	Kind string `json:"kind"`
	// Namespace of the owner; empty for a cluster-scoped owner (Tenant, AgentRollout).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Name of the owner.
	// +required
	Name string `json:"name"`
	// UID of the owner.
	// +optional
	UID string `json:"uid,omitempty"`
}

// AssignmentSpec is one deployment as one cluster must run it. The hub writes it.
type AssignmentSpec struct {
	// Owner is the deployment this Assignment comes from.
	// +required
	Owner DeploymentReference `json:"owner"`
	// Artifact to apply.
	// +required
	Artifact SignedArtifact `json:"artifact"`
	// Tenant is the Tenant the owner belongs to; empty for platform deployments. The
	// agent never applies a tenant's Assignment with its own identity, and gives it
	// only the SOPS keys that name the tenant.
	// +optional
	Tenant string `json:"tenant,omitempty"`
	// ServiceAccountName the agent impersonates on the spoke; the agent's own identity
	// when empty (platform deployments only).
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// ServiceAccountNamespace holds that ServiceAccount; the target namespace (or
	// default) when empty.
	// +optional
	ServiceAccountNamespace string `json:"serviceAccountNamespace,omitempty"`
	// TargetNamespace overrides the namespace of every namespaced object.
	// +optional
	TargetNamespace string `json:"targetNamespace,omitempty"`
	// Prune deletes what a new revision dropped, and everything when the Assignment goes.
	// +optional
	Prune bool `json:"prune,omitempty"`
	// ApplySettings are copied from the deployment; the hub adds the Cluster's
	// variables and cluster_name to postBuild.substitute.
	meta.ApplySettings `json:",inline"`
	// DependsOn names Assignments, in the same namespace, that must be Ready on their
	// current artifact before this one is applied.
	// +optional
	DependsOn []string `json:"dependsOn,omitempty"`
	// UnplacedDependencies names Assignments (as DependsOn does) this one depends
	// on whose deployments are not placed on this cluster: they will never exist here,
	// so the agent applies nothing and reports DependencyNotPlaced rather than
	// waiting. The hub moves a dependency back to DependsOn once it is placed here.
	// +optional
	UnplacedDependencies []string `json:"unplacedDependencies,omitempty"`
	// Interval is the deployment's spec.interval: the agent checks the whole
	// Assignment for drift (and health) at least this often, and no more often than
	// every 10 seconds; its own --resync-interval when longer or unset.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// RetryInterval is how soon a failed apply is tried again; when unset the agent
	// retries with a short exponential backoff, capped at the interval.
	// +optional
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`
	// Suspend, set by the hub while the deployment is suspended, makes the agent leave
	// the spoke as it is: nothing is applied or corrected; health and drift are still
	// reported.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// HealthCheckExprs are the deployment's CEL health checks, evaluated by the
	// agent for the objects it health-checks (signed with the rest of the spec).
	// +optional
	HealthCheckExprs []meta.CustomHealthCheck `json:"healthCheckExprs,omitempty"`
	// Helm makes the agent release the artifact's chart and values with Helm (see
	// artifact.HelmChartDir) instead of applying its manifests. Set by HelmReleases.
	// +optional
	Helm *meta.HelmReleaseSettings `json:"helm,omitempty"`
	// AgentVersion, set by the AgentRollout on the Assignment that carries the agent's
	// own Deployment, is the version the agent must report running: until its own
	// version equals it the agent does not report Ready, so the rollout counts the
	// cluster as still upgrading.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	AgentVersion string `json:"agentVersion,omitempty"`
}

// ReleaseStatus is the Helm release an Assignment runs on its spoke.
type ReleaseStatus struct {
	// Name and Namespace (the storage namespace) of the release.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Revision is the release revision Helm last recorded.
	// +optional
	Revision int32 `json:"revision,omitempty"`
	// Status is Helm's status of that revision (deployed, failed, pending-upgrade...).
	// +optional
	Status string `json:"status,omitempty"`
	// ChartVersion of that revision.
	// +optional
	ChartVersion string `json:"chartVersion,omitempty"`
	// Failures counts failed installs or upgrades of AttemptedDigest; remediation
	// stops once it passes the spec's retries.
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// AttemptedDigest is the artifact digest Failures counts for.
	// +optional
	AttemptedDigest string `json:"attemptedDigest,omitempty"`
	// LastAction is the last Helm action and its outcome, e.g. "upgrade failed,
	// rolled back to revision 3".
	// +optional
	LastAction string `json:"lastAction,omitempty"`
}

// DriftStatus reports hand-made changes the agent found on the spoke.
type DriftStatus struct {
	// Corrections counts the objects the agent found drifted (and restored, unless
	// the mode is Warn) since the Assignment was created.
	// +optional
	Corrections int64 `json:"corrections,omitempty"`
	// LastObject is the last drifted object, as Kind/namespace/name.
	// +optional
	LastObject string `json:"lastObject,omitempty"`
	// LastTime is when drift was last found.
	// +optional
	LastTime *metav1.Time `json:"lastTime,omitempty"`
}

// InventoryEntry is one object the agent applied.
type InventoryEntry struct {
	// ID is <namespace>_<name>_<group>_<kind>.
	ID string `json:"id"`
	// Version is the API version the object was applied with.
	Version string `json:"v"`
}

// AssignmentStatus is written by the cluster's agent.
type AssignmentStatus struct {
	// ObservedGeneration is the last generation the agent acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Drifted, Released.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// AppliedDigest is the digest of the artifact the spoke runs.
	// +optional
	AppliedDigest string `json:"appliedDigest,omitempty"`
	// AppliedRevision is the revision of the artifact the spoke runs.
	// +optional
	AppliedRevision string `json:"appliedRevision,omitempty"`
	// Inventory is the number of objects applied. Which ones is recorded by the agent
	// on its spoke (a Secret in its namespace), where prune and release read it.
	// +optional
	Inventory int32 `json:"inventory,omitempty"`
	// Entries listed the objects applied. Deprecated: no longer written; agents
	// before the spoke's record wrote it, and an agent now takes it over once into
	// its record and clears it. Kept so that such statuses still read.
	// +optional
	Entries []InventoryEntry `json:"entries,omitempty"`
	// Drift reports hand-made changes found on the spoke.
	// +optional
	Drift *DriftStatus `json:"drift,omitempty"`
	// Release is the Helm release, for an Assignment of a HelmRelease.
	// +optional
	Release *ReleaseStatus `json:"release,omitempty"`
	// Message tells the last outcome in one sentence.
	// +optional
	Message string `json:"message,omitempty"`
}

// Assignment is the hub-to-spoke protocol: written by the hub in a cluster's hub
// namespace, read by exactly one agent, which reports back in status.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=asg,categories=flotilla
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner.name`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.spec.artifact.revision`,priority=1
// +kubebuilder:printcolumn:name="Objects",type=integer,JSONPath=`.status.inventory`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Assignment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AssignmentSpec `json:"spec"`
	// +optional
	Status AssignmentStatus `json:"status,omitempty"`
}

// AssignmentList is a list of Assignments.
// +kubebuilder:object:root=true
type AssignmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Assignment `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Cluster{}, &ClusterList{}, &ClusterGroup{}, &ClusterGroupList{}, &Assignment{}, &AssignmentList{})
}

// GetConditions returns the status conditions.
func (in *Assignment) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Assignment) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
