package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
