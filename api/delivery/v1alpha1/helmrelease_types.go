package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// HelmReleaseKind is the kind name.
const HelmReleaseKind = "HelmRelease"

// ChartSourceReference names where a chart comes from.
type ChartSourceReference struct {
	// Kind of the source.
	// +kubebuilder:validation:Enum=HelmRepository;GitRepository;OCIRepository
	// +required
	Kind string `json:"kind"`
	// Name of the source.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the source; the HelmRelease's own when empty.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// HelmChartTemplate says which chart, at which versions, from which source.
type HelmChartTemplate struct {
	// Chart is the chart's name in a HelmRepository, or its folder in a GitRepository
	// or OCIRepository artifact.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern="^[^\\x00]*$"
	Chart string `json:"chart"`
	// Version is a semver range (or an exact version) of the chart in a
	// HelmRepository; the newest stable version when empty. A chart in a Git or OCI
	// source has the version its Chart.yaml says.
	// +optional
	Version string `json:"version,omitempty"`
	// SourceRef is the source of the chart.
	// +required
	SourceRef ChartSourceReference `json:"sourceRef"`
}

// ValuesReference names a ConfigMap or Secret, in the HelmRelease's namespace on the
// hub, holding values.
type ValuesReference struct {
	// Kind of the object.
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	// +required
	Kind string `json:"kind"`
	// Name of the object, in the HelmRelease's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// ValuesKey is the data key holding the values; values.yaml when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern="^[-._a-zA-Z0-9]*$"
	ValuesKey string `json:"valuesKey,omitempty"`
	// TargetPath puts the key's whole content, as one value, at this path of the
	// values (Helm's --set syntax, e.g. a.b[0].c); the key holds YAML values when
	// empty.
	// +optional
	// +kubebuilder:validation:MaxLength=250
	TargetPath string `json:"targetPath,omitempty"`
	// Optional lets the release go on when the object or the key does not exist.
	// +optional
	Optional bool `json:"optional,omitempty"`
}

// DefaultValuesKey is the key read when a ValuesReference names none.
const DefaultValuesKey = "values.yaml"

// HelmReleaseSpec says which chart to release with which values, where to place it
// and how each spoke runs it.
type HelmReleaseSpec struct {
	// Chart to release.
	// +required
	Chart HelmChartTemplate `json:"chart"`
	// Interval between resolutions of the chart and values when nothing else
	// triggers one.
	// +kubebuilder:default="5m"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
	// ReleaseName is the Helm release's name on every spoke; [targetNamespace-]name
	// when empty (as Flux names it), shortened to 53 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=53
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	ReleaseName string `json:"releaseName,omitempty"`
	// TargetNamespace is the release's namespace on every spoke; the HelmRelease's
	// namespace when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	TargetNamespace string `json:"targetNamespace,omitempty"`
	// StorageNamespace holds Helm's release Secrets on every spoke; the target
	// namespace when empty. A tenant may name only its target namespaces.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	StorageNamespace string `json:"storageNamespace,omitempty"`
	// Values are the release's values; they override ValuesFrom. ${cluster_name}
	// and the Cluster's variables are substituted on each spoke.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	Values *apiextensionsv1.JSON `json:"values,omitempty"`
	// ValuesFrom reads values from ConfigMaps and Secrets in the HelmRelease's
	// namespace on the hub; later entries override earlier ones.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	ValuesFrom []ValuesReference `json:"valuesFrom,omitempty"`
	// Install configures installs.
	// +optional
	Install *meta.HelmInstall `json:"install,omitempty"`
	// Upgrade configures upgrades.
	// +optional
	Upgrade *meta.HelmUpgrade `json:"upgrade,omitempty"`
	// Test runs the chart's tests after install and upgrade.
	// +optional
	Test *meta.HelmTest `json:"test,omitempty"`
	// Rollback configures the rollbacks of upgrade remediation.
	// +optional
	Rollback *meta.HelmRollback `json:"rollback,omitempty"`
	// Uninstall configures uninstalls.
	// +optional
	Uninstall *meta.HelmUninstall `json:"uninstall,omitempty"`
	// DriftDetection of hand-made changes to the release's objects.
	// +optional
	DriftDetection *meta.HelmDriftDetection `json:"driftDetection,omitempty"`
	// MaxHistory is how many release revisions Helm keeps on each spoke; 5 when
	// unset, 0 keeps them all.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxHistory *int32 `json:"maxHistory,omitempty"`
	// DependsOn lists HelmReleases that must be Ready on a cluster before this one
	// is released there.
	// +optional
	DependsOn []DependencyReference `json:"dependsOn,omitempty"`
	// ServiceAccountName is the service account, in the target namespace on each
	// spoke, that the agent impersonates to release. A tenant's releases always run
	// as the tenant's identity.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// Timeout of each Helm action (install, upgrade, rollback, uninstall) on a spoke;
	// 5m when unset.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Suspend stops resolving and placing while true; spokes keep what they run.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// Placement chooses the clusters.
	// +optional
	Placement Placement `json:"placement,omitempty"`
	// Rollout limits how fast a new chart or values move across the targeted clusters.
	// +optional
	Rollout *Rollout `json:"rollout,omitempty"`
}

// HelmReleaseStatus is the resolution and the fleet-wide rollout of a HelmRelease.
type HelmReleaseStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the packaged chart and values handed to the targeted clusters.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// LastAttemptedRevision is the chart version of the last resolution, successful
	// or not.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	// LastAppliedRevision is the chart version the clusters are given.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// LastAttemptedValuesChecksum is sha256 of the merged values of the last
	// resolution.
	// +optional
	LastAttemptedValuesChecksum string `json:"lastAttemptedValuesChecksum,omitempty"`
	// Clusters counts the targeted clusters by rollout state.
	// +optional
	Clusters meta.ClusterCounts `json:"clusters,omitempty"`
	// Failures names failed clusters, at most 32 of them.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Failures []meta.ClusterFailure `json:"failures,omitempty"`
	// ChartVersions counts the targeted clusters by the chart version they run, most
	// common first, at most 16 entries.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	ChartVersions []meta.VersionCount `json:"chartVersions,omitempty"`
	// Rollout is where the rollout of the current artifact stands.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// LastHandledReconcileAt is the last value of the reconcile-requested-at
	// annotation handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// HelmRelease resolves a chart and values on the hub, packages them into one signed
// artifact, and has Helm release it on every cluster its placement selects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hr,categories=flotilla
// +kubebuilder:printcolumn:name="Chart",type=string,JSONPath=`.spec.chart.chart`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.lastAppliedRevision`
// +kubebuilder:printcolumn:name="Targeted",type=integer,JSONPath=`.status.clusters.targeted`
// +kubebuilder:printcolumn:name="Applied",type=integer,JSONPath=`.status.clusters.applied`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.clusters.ready`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.clusters.failed`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type HelmRelease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec HelmReleaseSpec `json:"spec"`
	// +optional
	Status HelmReleaseStatus `json:"status,omitempty"`
}

// HelmReleaseList is a list of HelmReleases.
// +kubebuilder:object:root=true
type HelmReleaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HelmRelease `json:"items"`
}

func init() {
	SchemeBuilder.Register(&HelmRelease{}, &HelmReleaseList{})
}

// GetConditions returns the status conditions.
func (in *HelmRelease) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *HelmRelease) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// EffectiveTargetNamespace is the release's namespace on the spokes.
func (in *HelmRelease) EffectiveTargetNamespace() string {
	if in.Spec.TargetNamespace != "" {
		return in.Spec.TargetNamespace
	}
	return in.Namespace
}

// EffectiveStorageNamespace is where Helm keeps the release's Secrets on the spokes.
func (in *HelmRelease) EffectiveStorageNamespace() string {
	if in.Spec.StorageNamespace != "" {
		return in.Spec.StorageNamespace
	}
	return in.EffectiveTargetNamespace()
}

// EffectiveReleaseName is the Helm release's name on the spokes: spec.releaseName,
// else [targetNamespace-]name, shortened to Helm's 53 characters with a hash of the
// whole so that two long names do not meet.
func (in *HelmRelease) EffectiveReleaseName() string {
	if in.Spec.ReleaseName != "" {
		return in.Spec.ReleaseName
	}
	name := in.Name
	if in.Spec.TargetNamespace != "" {
		name = in.Spec.TargetNamespace + "-" + in.Name
	}
	return shortenReleaseName(name)
}
