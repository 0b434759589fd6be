package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// TenantKind is the kind name.
const TenantKind = "Tenant"

// DefaultRole is the ClusterRole a tenant's identity gets in each of its target
// namespaces when spec.role is empty.
const DefaultRole = "admin"

// TenantSpec says what a tenant owns on the hub and may reach on the spokes. Only the
// platform team writes Tenants (they are cluster-scoped); tenants write deployments in
// their namespaces and are held to this spec on the hub and on every spoke.
// +kubebuilder:validation:XValidation:rule="!has(self.targetNamespaces) || self.targetNamespaces.all(n, !(n in ['kube-system', 'kube-public', 'kube-node-lease', 'flotilla-system']))",message="targetNamespaces may not name kube-system, kube-public, kube-node-lease or flotilla-system"
type TenantSpec struct {
	// Namespaces are the hub namespaces the tenant owns: every deployment in them is
	// the tenant's. A namespace belongs to one Tenant at most.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	Namespaces []string `json:"namespaces"`
	// ClusterSelector selects the Clusters the tenant may reach; a deployment's
	// placement is intersected with it. Absent means none; {} means all.
	// +optional
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
	// TargetNamespaces are the spoke namespaces the tenant may write to. Flotilla
	// creates them on every cluster the tenant reaches, with the tenant's
	// ServiceAccount in the first one and a RoleBinding to spec.role in each.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	TargetNamespaces []string `json:"targetNamespaces"`
	// ServiceAccountName is the tenant's identity on the spokes, in the first target
	// namespace; the Tenant's name when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// Role is the ClusterRole bound to the tenant's identity in each target
	// namespace; admin when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Role string `json:"role,omitempty"`
}

// TenantClusterCounts counts the clusters a tenant reaches.
type TenantClusterCounts struct {
	// Total is the number of clusters the tenant's selector matches.
	// +optional
	Total int32 `json:"total,omitempty"`
	// Ready is how many of them have the tenant's namespaces, identity and bindings in
	// place.
	// +optional
	Ready int32 `json:"ready,omitempty"`
}

// TenantStatus reports where the tenant is set up.
type TenantStatus struct {
	// ObservedGeneration is the last generation fully reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Clusters counts the clusters the tenant reaches and those where it is set up.
	// +optional
	Clusters TenantClusterCounts `json:"clusters,omitempty"`
	// Artifact holds what sets the tenant up on each cluster (its namespaces,
	// ServiceAccount and RoleBindings), as the hub signed and assigned it.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// Failures names clusters where the set-up failed, at most 32.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Failures []meta.ClusterFailure `json:"failures,omitempty"`
}

// Tenant is an application team on the hub: the hub namespaces it owns, the clusters
// and spoke namespaces it may reach, and the identity its deployments apply as.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=tenant,categories=flotilla
// +kubebuilder:printcolumn:name="Clusters",type=integer,JSONPath=`.status.clusters.total`
// +kubebuilder:printcolumn:name="Clusters-Ready",type=integer,JSONPath=`.status.clusters.ready`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec TenantSpec `json:"spec"`
	// +optional
	Status TenantStatus `json:"status,omitempty"`
}

// TenantList is a list of Tenants.
// +kubebuilder:object:root=true
type TenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tenant `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Tenant{}, &TenantList{})
}

// GetConditions returns the status conditions.
func (in *Tenant) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Tenant) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// IdentityName is the tenant's ServiceAccount name on the spokes.
func (in *Tenant) IdentityName() string {
	if in.Spec.ServiceAccountName != "" {
		return in.Spec.ServiceAccountName
	}
	return in.Name
}

// IdentityNamespace is the spoke namespace that holds the tenant's ServiceAccount.
func (in *Tenant) IdentityNamespace() string {
	if len(in.Spec.TargetNamespaces) == 0 {
		return ""
	}
	return in.Spec.TargetNamespaces[0]
}

// RoleName is the ClusterRole bound in each target namespace.
func (in *Tenant) RoleName() string {
	if in.Spec.Role != "" {
		return in.Spec.Role
	}
	return DefaultRole
}
