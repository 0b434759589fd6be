// Package v1alpha1 is the notification.flotilla.dev API: Providers (where messages go),
// Alerts (which events of a tenant's objects become messages) and Receivers (webhooks
// from Git hosts and others that make the hub reconcile at once).
// +kubebuilder:object:generate=true
// +groupName=notification.flotilla.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "notification.flotilla.dev", Version: "v1alpha1"}
	// SchemeBuilder registers this API's kinds.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds this API's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
