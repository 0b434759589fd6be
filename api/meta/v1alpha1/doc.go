// Package v1alpha1 holds the types and condition vocabulary that every Flotilla API
// group shares: artifacts, object references, rollout counts and the kstatus
// conditions with their reasons.
// +kubebuilder:object:generate=true
package v1alpha1
