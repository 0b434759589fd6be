package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// ReceiverKind is the kind name.
const ReceiverKind = "Receiver"

// Receiver types: who calls, and how the call proves it knows the token.
const (
	// GitHubReceiver checks X-Hub-Signature-256 (HMAC-SHA256 of the body with the
	// token) and filters on X-GitHub-Event; a ping is answered and does nothing.
	GitHubReceiver = "github"
	// GitLabReceiver checks that X-Gitlab-Token equals the token and filters on
	// X-Gitlab-Event.
	GitLabReceiver = "gitlab"
	// BitbucketReceiver checks X-Hub-Signature (sha256=HMAC of the body with the
	// token, as Bitbucket Server and Cloud send it) and filters on X-Event-Key.
	BitbucketReceiver = "bitbucket"
	// GenericReceiver: knowing the path is the proof (the path is derived from the
	// token).
	GenericReceiver = "generic"
	// GenericHMACReceiver checks X-Signature: sha256=<HMAC-SHA256 of the body with
	// the token, hex> (sha1= and sha512= are taken too).
	GenericHMACReceiver = "generic-hmac"
)

// WebhookPathPrefix is where the hub serves every Receiver; a Receiver's path is
// this prefix followed by the sha256 (hex) of its token, name and namespace.
const WebhookPathPrefix = "/hook/"

// TokenKey is the key of the Receiver's Secret that holds its token.
const TokenKey = "token"

// Receiver condition reasons.
const (
	// TokenNotFoundReason: the Secret spec.secretRef names, or its token key, is
	// missing or empty; nothing is served until it is there.
	TokenNotFoundReason = "TokenNotFound"
	// ResourceNotAllowedReason: a resource is in another namespace than the
	// Receiver's own; the Receiver serves nothing until the spec changes.
	ResourceNotAllowedReason = "ResourceNotAllowed"
	// InvalidSignatureReason: the reason of the Warning Event for a call whose
	// signature or token did not verify.
	InvalidSignatureReason = "InvalidSignature"
	// ReconcileRequestedReason: the reason of the Event for a valid call.
	ReconcileRequestedReason = "ReconcileRequested"
)

// ReceiverResource names what a valid call asks to reconcile: one object by name,
// or with name "*" every object of the kind in the Receiver's namespace that matches
// matchLabels.
// +kubebuilder:validation:XValidation:rule="!has(self.matchLabels) || self.name == '*'",message="matchLabels needs name '*'"
type ReceiverResource struct {
	// APIVersion of the resource; the kind's own group and v1alpha1 when empty.
	// +optional
	// +kubebuilder:validation:Enum=source.flotilla.dev/v1alpha1;delivery.flotilla.dev/v1alpha1
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the resource: a kind the hub reconciles on request.
	// +required
	// +kubebuilder:validation:Enum=GitRepository;HelmRepository;OCIRepository;Kustomization;HelmRelease
	Kind string `json:"kind"`
	// Name of the resource, or "*" for every one of the kind (matching matchLabels).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$`
	Name string `json:"name"`
	// Namespace of the resource; the Receiver's own when empty. Any other namespace
	// is refused (ResourceNotAllowed): a Receiver reaches only its own namespace's
	// objects, so a tenant's Receiver reaches only the tenant's.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// MatchLabels selects, with name "*", the objects to reconcile.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// ReceiverSpec says who may call and what a call reconciles.
type ReceiverSpec struct {
	// Type of the caller, which says how a call is verified.
	// +required
	// +kubebuilder:validation:Enum=github;gitlab;bitbucket;generic;generic-hmac
	Type string `json:"type"`
	// Events the Receiver acts on, as the caller names them (for github X-GitHub-Event
	// such as push; for gitlab X-Gitlab-Event such as "Push Hook"; for bitbucket
	// X-Event-Key such as repo:push). Empty: every event. Not used by the generic types.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Events []string `json:"events,omitempty"`
	// Resources a valid call asks the hub to reconcile at once, in the Receiver's
	// own namespace.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Resources []ReceiverResource `json:"resources"`
	// SecretRef names a Secret in the Receiver's namespace whose key "token" is the
	// shared secret: the HMAC key, or the token a caller sends. The Receiver's path
	// is derived from it too.
	// +required
	SecretRef meta.LocalObjectReference `json:"secretRef"`
	// Interval at which the hub checks the Receiver and its Secret again.
	// +kubebuilder:default="10m"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Suspend makes the hub refuse calls (503) while true.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ReceiverStatus is what the hub serves for the Receiver.
type ReceiverStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// WebhookPath is where the hub serves this Receiver:
	// /hook/<sha256 of token, name and namespace>. Empty while not Ready.
	// +optional
	WebhookPath string `json:"webhookPath,omitempty"`
	// URL is WebhookPath on the hub's receiver address, when the hub knows it.
	// +optional
	URL string `json:"url,omitempty"`
	// LastHandledReconcileAt is the last value of the reconcile-requested-at annotation handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// Receiver is a webhook the hub serves: a verified call from a Git host or another
// system makes the hub reconcile the named sources and deployments at once.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rcv,categories=flotilla
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.webhookPath`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Receiver struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ReceiverSpec `json:"spec"`
	// +optional
	Status ReceiverStatus `json:"status,omitempty"`
}

// ReceiverList is a list of Receivers.
// +kubebuilder:object:root=true
type ReceiverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Receiver `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Receiver{}, &ReceiverList{})
}

// GetConditions returns the status conditions.
func (in *Receiver) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Receiver) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
