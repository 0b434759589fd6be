// Package v1alpha1 is the tenancy.flotilla.dev API: Tenants, which say which hub
// namespaces belong to whom, which clusters and spoke namespaces they may reach, and as
// which identity their deployments apply.
// +kubebuilder:object:generate=true
// +groupName=tenancy.flotilla.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "tenancy.flotilla.dev", Version: "v1alpha1"}
	// SchemeBuilder registers this API's kinds.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds this API's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
