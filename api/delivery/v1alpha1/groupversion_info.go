// Package v1alpha1 is the delivery.flotilla.dev API: what the hub builds from sources and hands to clusters.
// +kubebuilder:object:generate=true
// +groupName=delivery.flotilla.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "delivery.flotilla.dev", Version: "v1alpha1"}
	// SchemeBuilder registers this API's kinds.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds this API's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
