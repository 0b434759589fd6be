// Package v1alpha1 is the source.flotilla.dev API: where the hub fetches content from.
// +kubebuilder:object:generate=true
// +groupName=source.flotilla.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "source.flotilla.dev", Version: "v1alpha1"}
	// SchemeBuilder registers this API's kinds.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds this API's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
