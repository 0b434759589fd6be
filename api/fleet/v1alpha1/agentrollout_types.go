package v1alpha1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// AgentRolloutKind is the kind name.
const AgentRolloutKind = "AgentRollout"

// AgentRolloutName is the name of the one AgentRollout: the hub writes it at start
// (flotilla-hub --agent-image), and the API server refuses any other name.
const AgentRolloutName = "flotilla-agent"

// AgentRolloutSpec is the agent every cluster should run, and how fast it gets there.
// +kubebuilder:validation:XValidation:rule="has(self.version) || (!self.image.contains('@') && self.image.matches(':[A-Za-z0-9_][A-Za-z0-9_.-]*$'))",message="version is required when the image has no tag (e.g. pinned by digest)"
type AgentRolloutSpec struct {
	// Image is the agent's container image, set on deploy/agent's Deployment
	// (flotilla-system/flotilla-agent) on every targeted cluster.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`
	// Version is what the agent of that image reports (flotilla-agent --version); the
	// image's tag when empty. A cluster counts as upgraded only once its agent
	// reports it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_][A-Za-z0-9_.+-]*$`
	Version string `json:"version,omitempty"`
	// Placement chooses the clusters whose agent is managed; every Cluster when empty.
	// +optional
	Placement deliveryv1.Placement `json:"placement,omitempty"`
	// Rollout paces the upgrade: stages, maxUnavailable and pauses, as for any
	// deployment. Every cluster at once when unset.
	// +optional
	Rollout *deliveryv1.Rollout `json:"rollout,omitempty"`
}

// AgentVersion is the version the agents must report: spec.version, else the image's tag.
func (s *AgentRolloutSpec) AgentVersion() string {
	if s.Version != "" {
		return s.Version
	}
	return ImageTag(s.Image)
}

// ImageTag is the tag of an image reference, or "" when it has none (or is pinned by
// digest).
func ImageTag(image string) string {
	if strings.Contains(image, "@") {
		return ""
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(name, ":"); i >= 0 {
		return name[i+1:]
	}
	return ""
}

// AgentRolloutStatus reports where the agent upgrade stands.
type AgentRolloutStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact holds the agent's Deployment with the image set, as the hub signed and
	// assigned it.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// Clusters counts the targeted clusters: ready means running the wanted version.
	// +optional
	Clusters meta.ClusterCounts `json:"clusters,omitempty"`
	// Failures names clusters whose agent upgrade failed, at most 32 of them.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Failures []meta.ClusterFailure `json:"failures,omitempty"`
	// AgentVersions counts the targeted clusters by the agent version their
	// heartbeat reports, most common first.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	AgentVersions []meta.VersionCount `json:"agentVersions,omitempty"`
	// Rollout is where the rollout of the current image stands.
	// +optional
	Rollout *deliveryv1.RolloutStatus `json:"rollout,omitempty"`
}

// AgentRollout is the agent the fleet runs: the hub hands the agent's Deployment with
// spec.image to every targeted cluster through the Assignment path, so an agent
// upgrade moves stage by stage and stops at a failing cluster, as any deployment does.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ar,categories=flotilla
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'flotilla-agent'",message="the one AgentRollout is named flotilla-agent"
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`
// +kubebuilder:printcolumn:name="Targeted",type=integer,JSONPath=`.status.clusters.targeted`
// +kubebuilder:printcolumn:name="Upgraded",type=integer,JSONPath=`.status.clusters.ready`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.clusters.failed`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type AgentRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AgentRolloutSpec `json:"spec"`
	// +optional
	Status AgentRolloutStatus `json:"status,omitempty"`
}

// AgentRolloutList is a list of AgentRollouts.
// +kubebuilder:object:root=true
type AgentRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentRollout `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AgentRollout{}, &AgentRolloutList{})
}

// GetConditions returns the status conditions.
func (in *AgentRollout) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *AgentRollout) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
