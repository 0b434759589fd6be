// Package v1alpha1 is the fleet.flotilla.dev API: the clusters of the fleet, their groups, and the Assignments the hub hands to each.
// +kubebuilder:object:generate=true
// +groupName=fleet.flotilla.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "fleet.flotilla.dev", Version: "v1alpha1"}
	// SchemeBuilder registers this API's kinds.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds this API's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
