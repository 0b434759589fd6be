package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// AlertKind is the kind name.
const AlertKind = "Alert"

// Event severities an Alert can ask for.
const (
	// SeverityInfo sends every event.
	SeverityInfo = "info"
	// SeverityError sends only events about failures.
	SeverityError = "error"
)

// Reasons an Alert or a Provider gives in its conditions.
const (
	// ProviderNotFoundReason: the Alert's providerRef names no Provider.
	ProviderNotFoundReason = "ProviderNotFound"
	// InvalidEventSourceReason: an event source names a namespace or object the
	// Alert's tenant may not watch.
	InvalidEventSourceReason = "InvalidEventSource"
	// InvalidExpressionReason: an inclusion or exclusion entry is not a regular expression.
	InvalidExpressionReason = "InvalidExpression"
	// SecretNotFoundReason: a Secret the Provider names is missing or lacks a key.
	SecretNotFoundReason = "SecretNotFound"
	// InvalidProviderReason: the Provider's settings cannot be used (address, proxy, CA).
	InvalidProviderReason = "InvalidProvider"
)

// EventSource chooses the objects whose events an Alert sends.
type EventSource struct {
	// Kind of the objects: a deployment (Kustomization, HelmRelease), a source
	// (GitRepository, OCIRepository, HelmRepository) or a fleet Cluster.
	// +required
	// +kubebuilder:validation:Enum=Kustomization;HelmRelease;GitRepository;OCIRepository;HelmRepository;Cluster
	Kind string `json:"kind"`
	// Name of the object, or `*` for every object of the kind.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Namespace of the objects; the Alert's own when empty. It must be a namespace of
	// the Alert's tenant (any namespace for an Alert in a platform namespace). Not
	// used for Cluster, which is cluster-scoped: a tenant's Alert sees only the
	// clusters its Tenant reaches.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// MatchLabels, when set, narrows `*` to the objects with these labels.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// AlertSpec says which events go to which Provider.
type AlertSpec struct {
	// ProviderRef names the Provider, in the Alert's namespace.
	// +required
	ProviderRef meta.LocalObjectReference `json:"providerRef"`
	// EventSources are the objects whose events are sent.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	EventSources []EventSource `json:"eventSources"`
	// EventSeverity: info sends every event, error only failures.
	// +optional
	// +kubebuilder:validation:Enum=info;error
	// +kubebuilder:default=info
	EventSeverity string `json:"eventSeverity,omitempty"`
	// InclusionList, when set, sends only events whose message matches one of these
	// regular expressions (RE2 syntax).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	InclusionList []string `json:"inclusionList,omitempty"`
	// ExclusionList drops events whose message matches one of these regular
	// expressions (RE2 syntax); it wins over the inclusion list.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	ExclusionList []string `json:"exclusionList,omitempty"`
	// Summary is a line added to every message, e.g. the environment's name.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	Summary string `json:"summary,omitempty"`
	// Suspend stops sending while true: events are dropped, not queued.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// AlertStatus says whether the Alert is in force.
type AlertStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Alert sends the events of some of a tenant's objects to a Provider.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=flotilla
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.providerRef.name`
// +kubebuilder:printcolumn:name="Severity",type=string,JSONPath=`.spec.eventSeverity`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Alert struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AlertSpec `json:"spec"`
	// +optional
	Status AlertStatus `json:"status,omitempty"`
}

// AlertList is a list of Alerts.
// +kubebuilder:object:root=true
type AlertList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Alert `json:"items"`
}

// GetConditions returns the status conditions.
func (a *Alert) GetConditions() []metav1.Condition { return a.Status.Conditions }

// SetConditions replaces the status conditions.
func (a *Alert) SetConditions(c []metav1.Condition) { a.Status.Conditions = c }

func init() {
	SchemeBuilder.Register(&Alert{}, &AlertList{})
}
