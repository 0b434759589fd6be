package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Placement chooses the clusters a deployment lands on: a cluster is targeted when it
// matches ClusterSelector or belongs to one of ClusterGroups. An empty placement
// targets no cluster.
type Placement struct {
	// ClusterSelector selects Clusters by label. An empty selector ({}) selects every cluster.
	// +optional
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
	// ClusterGroups lists ClusterGroups whose members are targeted.
	// +optional
	// +listType=set
	ClusterGroups []string `json:"clusterGroups,omitempty"`
}

// Rollout limits how many targeted clusters move to a new revision at once, and in
// which order.
type Rollout struct {
	// MaxUnavailable is how many targeted clusters (a number, or a percentage of the
	// targeted clusters, rounded down but at least 1) may be moving to a new revision
	// at once. A cluster counts as unavailable until its agent reports the new
	// revision Ready. All at once when unset.
	// +optional
	// +kubebuilder:validation:XIntOrString
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// Stages roll the revision out in order: every cluster of a stage is Ready before
	// the next stage starts. Targeted clusters in no stage form a last, implicit stage.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Stages []RolloutStage `json:"stages,omitempty"`
}

// RolloutStage is one step of a staged rollout.
type RolloutStage struct {
	// Name of the stage, e.g. canary.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// ClusterSelector picks this stage's clusters among the targeted ones.
	// +optional
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
	// ClusterGroups picks this stage's clusters among the targeted ones.
	// +optional
	ClusterGroups []string `json:"clusterGroups,omitempty"`
	// Pause holds the rollout after this stage until the deployment is annotated
	// delivery.flotilla.dev/approved-stage=<this stage's name>[@<anything>]; the
	// annotation must take a new value for each approval (`flotilla rollout approve`).
	// +optional
	Pause bool `json:"pause,omitempty"`
}

// ApprovedStageAnnotation on a Kustomization lets a paused rollout go past the named stage.
const ApprovedStageAnnotation = "delivery.flotilla.dev/approved-stage"

// RolloutStatus tells where the rollout of the current revision stands.
type RolloutStatus struct {
	// Revision being rolled out.
	// +optional
	Revision string `json:"revision,omitempty"`
	// Stage is the name of the stage in progress, if stages are used.
	// +optional
	Stage string `json:"stage,omitempty"`
	// Paused is true while a stage waits for approval.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// Updating is the number of clusters handed the new revision but not Ready on it yet.
	// +optional
	Updating int32 `json:"updating,omitempty"`
	// Waiting is the number of targeted clusters not yet handed the new revision.
	// +optional
	Waiting int32 `json:"waiting,omitempty"`
	// ApprovedStages are the paused stages approved for this revision.
	// +optional
	ApprovedStages []string `json:"approvedStages,omitempty"`
	// LastHandledApproval is the last value of the approved-stage annotation handled.
	// +optional
	LastHandledApproval string `json:"lastHandledApproval,omitempty"`
}
