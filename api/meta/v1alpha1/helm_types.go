package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CRD policies for a Helm install or upgrade: what happens to the CRDs in a chart's
// crds/ folder.
const (
	// CRDsSkip leaves them out.
	CRDsSkip = "Skip"
	// CRDsCreate creates the missing ones and leaves existing ones as they are.
	CRDsCreate = "Create"
	// CRDsCreateReplace creates the missing ones and replaces existing ones.
	CRDsCreateReplace = "CreateReplace"
)

// Remediation strategies for a failed upgrade.
const (
	// RemediateRollback rolls back to the last release that succeeded.
	RemediateRollback = "rollback"
	// RemediateUninstall uninstalls the release.
	RemediateUninstall = "uninstall"
)

// Helm drift detection modes (Flux's names, lower case as in helm-controller).
const (
	HelmDriftEnabled  = "enabled"
	HelmDriftWarn     = "warn"
	HelmDriftDisabled = "disabled"
)

// DefaultMaxHistory is how many release revisions Helm keeps when spec.maxHistory
// is not set; Helm's own default keeps every one, which grows a Secret per upgrade.
const DefaultMaxHistory = 5

// HelmInstall is how a release is installed.
type HelmInstall struct {
	// CreateNamespace creates the target namespace when it does not exist. A tenant's
	// identity is normally not allowed to create namespaces; its Tenant creates them.
	// +optional
	CreateNamespace bool `json:"createNamespace,omitempty"`
	// CRDs says what happens to the chart's CRDs on install.
	// +kubebuilder:validation:Enum=Skip;Create;CreateReplace
	// +kubebuilder:default=Create
	// +optional
	CRDs string `json:"crds,omitempty"`
	// DisableWait does not wait for the release's objects to become ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// DisableHooks skips the chart's install hooks.
	// +optional
	DisableHooks bool `json:"disableHooks,omitempty"`
	// Remediation of a failed install.
	// +optional
	Remediation *InstallRemediation `json:"remediation,omitempty"`
}

// InstallRemediation says how often a failed install is retried: each retry
// uninstalls what the failed attempt left, then installs again.
type InstallRemediation struct {
	// Retries after the first failed install; 0 leaves the failed release in place
	// until the spec or the chart changes.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Retries int32 `json:"retries,omitempty"`
	// IgnoreTestFailures does not count a failed test as a failed install.
	// +optional
	IgnoreTestFailures bool `json:"ignoreTestFailures,omitempty"`
}

// HelmUpgrade is how a release is upgraded.
type HelmUpgrade struct {
	// CRDs says what happens to the chart's CRDs on upgrade.
	// +kubebuilder:validation:Enum=Skip;Create;CreateReplace
	// +kubebuilder:default=Skip
	// +optional
	CRDs string `json:"crds,omitempty"`
	// DisableWait does not wait for the release's objects to become ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// DisableHooks skips the chart's upgrade hooks.
	// +optional
	DisableHooks bool `json:"disableHooks,omitempty"`
	// Force replaces objects whose update is refused.
	// +optional
	Force bool `json:"force,omitempty"`
	// CleanupOnFail deletes objects a failed upgrade created.
	// +optional
	CleanupOnFail bool `json:"cleanupOnFail,omitempty"`
	// Remediation of a failed upgrade.
	// +optional
	Remediation *UpgradeRemediation `json:"remediation,omitempty"`
}

// UpgradeRemediation says what is done after a failed upgrade.
type UpgradeRemediation struct {
	// Retries after the first failed upgrade; each is preceded by the strategy.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Retries int32 `json:"retries,omitempty"`
	// Strategy: rollback to the last release that succeeded (default), or uninstall.
	// +kubebuilder:validation:Enum=rollback;uninstall
	// +kubebuilder:default=rollback
	// +optional
	Strategy string `json:"strategy,omitempty"`
	// IgnoreTestFailures does not count a failed test as a failed upgrade.
	// +optional
	IgnoreTestFailures bool `json:"ignoreTestFailures,omitempty"`
	// RemediateLastFailure applies the strategy after the last retry failed too;
	// without it the last failed release is left as it is, for people to look at.
	// +optional
	RemediateLastFailure bool `json:"remediateLastFailure,omitempty"`
}

// HelmTest runs the chart's test hooks after each install and upgrade.
type HelmTest struct {
	// Enable runs the tests.
	// +optional
	Enable bool `json:"enable,omitempty"`
	// IgnoreFailures reports failed tests but keeps the release Ready and does not
	// remediate.
	// +optional
	IgnoreFailures bool `json:"ignoreFailures,omitempty"`
	// Timeout of the tests; spec.timeout when unset.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// HelmRollback is how a remediation rolls a release back.
type HelmRollback struct {
	// DisableWait does not wait for the rolled-back objects to become ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// DisableHooks skips the chart's rollback hooks.
	// +optional
	DisableHooks bool `json:"disableHooks,omitempty"`
	// Force replaces objects whose update is refused.
	// +optional
	Force bool `json:"force,omitempty"`
	// CleanupOnFail deletes objects a failed rollback created.
	// +optional
	CleanupOnFail bool `json:"cleanupOnFail,omitempty"`
}

// HelmUninstall is how a release is uninstalled: when its deployment is deleted,
// when the cluster leaves the placement, or as a remediation.
type HelmUninstall struct {
	// KeepHistory keeps the release's history Secrets.
	// +optional
	KeepHistory bool `json:"keepHistory,omitempty"`
	// DisableHooks skips the chart's delete hooks.
	// +optional
	DisableHooks bool `json:"disableHooks,omitempty"`
	// DisableWait does not wait for the objects to be gone.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
}

// HelmDriftDetection says what the agent does about hand-made changes to a release's
// objects on a spoke.
type HelmDriftDetection struct {
	// Mode: enabled corrects the drift and reports it; warn only reports it;
	// disabled does neither.
	// +kubebuilder:validation:Enum=enabled;warn;disabled
	// +kubebuilder:default=disabled
	// +optional
	Mode string `json:"mode,omitempty"`
}

// HelmReleaseSettings are what a spoke needs, besides the artifact (chart and
// values), to run a release. The hub copies them from the HelmRelease into every
// Assignment, where they are signed with the rest of the spec.
type HelmReleaseSettings struct {
	// ReleaseName is the Helm release's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=53
	ReleaseName string `json:"releaseName"`
	// StorageNamespace holds Helm's release Secrets.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	StorageNamespace string `json:"storageNamespace"`
	// Chart is the chart's name, for people.
	// +optional
	Chart string `json:"chart,omitempty"`
	// ChartVersion is the version of the chart in the artifact.
	// +optional
	ChartVersion string `json:"chartVersion,omitempty"`
	// MaxHistory is how many release revisions Helm keeps.
	// +optional
	MaxHistory *int32 `json:"maxHistory,omitempty"`
	// +optional
	Install *HelmInstall `json:"install,omitempty"`
	// +optional
	Upgrade *HelmUpgrade `json:"upgrade,omitempty"`
	// +optional
	Test *HelmTest `json:"test,omitempty"`
	// +optional
	Rollback *HelmRollback `json:"rollback,omitempty"`
	// +optional
	Uninstall *HelmUninstall `json:"uninstall,omitempty"`
	// +optional
	DriftDetection *HelmDriftDetection `json:"driftDetection,omitempty"`
}

// VersionCount says how many clusters run one version.
type VersionCount struct {
	// Version is a chart version (or a revision).
	Version string `json:"version"`
	// Clusters running it.
	Clusters int32 `json:"clusters"`
}

// MaxVersionCounts bounds a status' list of versions, whatever the fleet's size.
const MaxVersionCounts = 16
