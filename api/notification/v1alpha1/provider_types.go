package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// ProviderKind is the kind name.
const ProviderKind = "Provider"

// Provider types: where a Provider sends messages, and in which format.
const (
	SlackProvider       = "slack"
	MSTeamsProvider     = "msteams"
	DiscordProvider     = "discord"
	RocketProvider      = "rocket"
	GoogleChatProvider  = "googlechat"
	GenericProvider     = "generic"
	GenericHMACProvider = "generic-hmac"
	GitHubProvider      = "github"
	GitLabProvider      = "gitlab"
)

// ProviderSpec says where and how messages are sent.
// +kubebuilder:validation:XValidation:rule="self.type != 'github' && self.type != 'gitlab' || has(self.address) || has(self.secretRef)",message="github and gitlab need spec.address (the repository URL) or an address in spec.secretRef"
type ProviderSpec struct {
	// Type of the receiving service: slack, msteams, discord, rocket, googlechat,
	// generic (a JSON webhook), generic-hmac (a JSON webhook signed with the Secret's
	// token), github or gitlab (a commit status on the revision being rolled out).
	// +required
	// +kubebuilder:validation:Enum=slack;msteams;discord;rocket;googlechat;generic;generic-hmac;github;gitlab
	Type string `json:"type"`
	// Channel overrides the channel of the incoming webhook, where the service allows it (slack).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Channel string `json:"channel,omitempty"`
	// Username overrides the name the message is posted as, where the service allows it.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Username string `json:"username,omitempty"`
	// Address is the webhook URL; for github and gitlab, the repository's URL
	// (https://github.com/org/repo), the API being found from it. An address in the
	// Secret takes precedence.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern="^https?://.+$"
	Address string `json:"address,omitempty"`
	// Proxy is the HTTP(S) proxy the messages go through.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern="^https?://.+$"
	Proxy string `json:"proxy,omitempty"`
	// Timeout of one delivery attempt.
	// +optional
	// +kubebuilder:default="15s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// SecretRef names a Secret in the Provider's own namespace with any of: `address`
	// (the webhook URL, kept secret), `token` (a bearer token, the GitHub or GitLab
	// token, or the generic-hmac key), `headers` (YAML map of HTTP headers to add),
	// `proxy`. No other namespace can be named.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// CertSecretRef names a Secret in the Provider's own namespace whose `ca.crt`
	// is the CA the receiving service's certificate must chain to.
	// +optional
	CertSecretRef *meta.LocalObjectReference `json:"certSecretRef,omitempty"`
	// Suspend stops sending while true: messages for this Provider are dropped.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ProviderStatus says whether the Provider can send.
type ProviderStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Provider is a service the hub sends fleet events to: a chat webhook, a generic
// webhook, or a Git host's commit status API.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=flotilla
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Provider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ProviderSpec `json:"spec"`
	// +optional
	Status ProviderStatus `json:"status,omitempty"`
}

// ProviderList is a list of Providers.
// +kubebuilder:object:root=true
type ProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Provider `json:"items"`
}

// GetConditions returns the status conditions.
func (p *Provider) GetConditions() []metav1.Condition { return p.Status.Conditions }

// SetConditions replaces the status conditions.
func (p *Provider) SetConditions(c []metav1.Condition) { p.Status.Conditions = c }

func init() {
	SchemeBuilder.Register(&Provider{}, &ProviderList{})
}
