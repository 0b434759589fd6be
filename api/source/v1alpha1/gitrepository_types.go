package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// GitRepositoryKind is the kind name.
const GitRepositoryKind = "GitRepository"

// GitRepositoryRef pins what to check out. At most one of branch, tag and semver may be
// set; commit may stand alone or with a branch. Name may be set with any of them. When
// several are set the first of commit, name, semver, tag, branch wins, as in Flux.
// Without any, the remote's default branch is followed.
// +kubebuilder:validation:XValidation:rule="[has(self.branch), has(self.tag), has(self.semver)].filter(x, x).size() <= 1",message="set at most one of branch, tag and semver"
// +kubebuilder:validation:XValidation:rule="!has(self.commit) || !(has(self.tag) || has(self.semver))",message="commit may only be combined with branch or name"
type GitRepositoryRef struct {
	// Branch to follow.
	// +optional
	// +kubebuilder:validation:MinLength=1
	Branch string `json:"branch,omitempty"`
	// Tag to check out.
	// +optional
	// +kubebuilder:validation:MinLength=1
	Tag string `json:"tag,omitempty"`
	// SemVer range; the newest matching tag is checked out.
	// +optional
	// +kubebuilder:validation:MinLength=1
	SemVer string `json:"semver,omitempty"`
	// Name is a full Git reference to check out: refs/heads/<branch>, refs/tags/<tag>,
	// refs/pull/<n>/head, or any other ref the server advertises. It wins over semver,
	// tag and branch; only commit wins over it.
	// +optional
	// +kubebuilder:validation:Pattern="^refs/[^ ]+$"
	// +kubebuilder:validation:MaxLength=1024
	Name string `json:"name,omitempty"`
	// Commit SHA-1 to check out, alone or on Branch.
	// +optional
	// +kubebuilder:validation:Pattern="^[a-f0-9]{40}$"
	Commit string `json:"commit,omitempty"`
}

// GitRepositoryVerification asks for an OpenPGP check of the checked-out commit or tag.
type GitRepositoryVerification struct {
	// Mode is what is verified: the HEAD commit or the tag object.
	// +kubebuilder:validation:Enum=HEAD;Tag
	// +kubebuilder:default=HEAD
	// +optional
	Mode string `json:"mode,omitempty"`
	// SecretRef names a Secret whose values are armored OpenPGP public keys.
	// +required
	SecretRef meta.LocalObjectReference `json:"secretRef"`
}

// GitRepositoryInclude copies another GitRepository's artifact into this one's.
type GitRepositoryInclude struct {
	// Repository names a GitRepository in the same namespace. There is no namespace
	// field: a repository can only include what its own namespace (and so its own
	// tenant) holds.
	// +required
	Repository meta.LocalObjectReference `json:"repository"`
	// FromPath is the folder of the included artifact to copy; all of it when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	FromPath string `json:"fromPath,omitempty"`
	// ToPath is the folder of this artifact the files are copied to, replacing what
	// the repository itself has there; the included repository's name when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	ToPath string `json:"toPath,omitempty"`
}

// GitRepositorySpec says where to fetch from and how often.
type GitRepositorySpec struct {
	// URL of the repository: https://, http://, ssh:// or file://.
	// +required
	// +kubebuilder:validation:Pattern="^(https?|ssh|file)://.+$"
	URL string `json:"url"`
	// Ref pins the branch, tag, semver range or commit; the remote's default branch when empty.
	// +optional
	Ref *GitRepositoryRef `json:"ref,omitempty"`
	// Interval between fetches.
	// +kubebuilder:default="1m"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
	// Timeout for one fetch.
	// +kubebuilder:default="60s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// SecretRef names a Secret with the credentials: username and password, bearerToken,
	// identity and known_hosts, or ca.crt.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// Verify asks for an OpenPGP signature check.
	// +optional
	Verify *GitRepositoryVerification `json:"verify,omitempty"`
	// Ignore lists paths to leave out of the artifact, in .gitignore syntax.
	// +optional
	Ignore *string `json:"ignore,omitempty"`
	// Include copies the artifacts of other GitRepositories of the same namespace into
	// this one's, in order (a later entry wins where paths meet). A change of an
	// included artifact makes a new artifact of this repository.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Include []GitRepositoryInclude `json:"include,omitempty"`
	// Suspend stops fetching while true.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// GitRepositoryStatus is what the hub last fetched.
type GitRepositoryStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, ArtifactInStorage.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the last fetched revision, stored and served by the hub.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// IncludedArtifacts are the artifacts of spec.include that went into Artifact, in
	// the order of spec.include.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	IncludedArtifacts []meta.Artifact `json:"includedArtifacts,omitempty"`
	// LastHandledReconcileAt is the last value of the reconcile-requested-at annotation handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// GitRepository is a Git repository the hub fetches into artifacts.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=gitrepo,categories=flotilla
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.artifact.revision`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type GitRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec GitRepositorySpec `json:"spec"`
	// +optional
	Status GitRepositoryStatus `json:"status,omitempty"`
}

// GitRepositoryList is a list of GitRepositories.
// +kubebuilder:object:root=true
type GitRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GitRepository `json:"items"`
}

func init() {
	SchemeBuilder.Register(&GitRepository{}, &GitRepositoryList{})
}

// GetConditions returns the status conditions.
func (in *GitRepository) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *GitRepository) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
