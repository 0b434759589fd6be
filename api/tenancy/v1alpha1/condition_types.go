package v1alpha1

// Reasons a deployment (Kustomization, HelmRelease) is refused by the tenancy rules.
// Each names the rule that was broken; the deployment is Ready=False and Stalled with
// it, and no Assignment is written or changed until the spec or the Tenant changes.
const (
	// NamespaceNotAllowedReason: the deployment's namespace belongs to no Tenant and is
	// not one of the hub's platform namespaces (flotilla-hub --platform-namespaces).
	NamespaceNotAllowedReason = "NamespaceNotAllowed"
	// NamespaceConflictReason: more than one Tenant claims the deployment's namespace;
	// nothing in it is deployed until one of them lets go.
	NamespaceConflictReason = "NamespaceConflict"
	// SourceNotAllowedReason: the source is in a namespace the tenant does not own.
	SourceNotAllowedReason = "SourceNotAllowed"
	// DependencyNotAllowedReason: a dependsOn entry is in a namespace the tenant does
	// not own.
	DependencyNotAllowedReason = "DependencyNotAllowed"
	// TargetNamespaceNotAllowedReason: spec.targetNamespace is not one of the tenant's
	// target namespaces.
	TargetNamespaceNotAllowedReason = "TargetNamespaceNotAllowed"
	// ServiceAccountNotAllowedReason: spec.serviceAccountName names another identity
	// than the tenant's.
	ServiceAccountNotAllowedReason = "ServiceAccountNotAllowed"
	// NoClustersAllowedReason: the tenant's clusterSelector is absent, so it reaches no
	// cluster.
	NoClustersAllowedReason = "NoClustersAllowed"
)

// EgressNotAllowedReason: a source (GitRepository, HelmRepository, OCIRepository) or
// a Provider in a tenant's namespace made the hub dial an address tenants may not
// reach (loopback, link-local, private, shared, unspecified, multicast), one no
// flotilla-hub --tenant-egress-allow network covers. The object is Ready=False and
// Stalled with it, tried again at its interval; a source keeps its last artifact.
const EgressNotAllowedReason = "EgressNotAllowed"

// Reasons on a Tenant.
const (
	// TenantSetUpReason: the tenant's namespaces, identity and bindings are in place on
	// every cluster it reaches.
	TenantSetUpReason = "SetUp"
	// TenantInvalidReason: the spec cannot be used (for instance a bad selector).
	TenantInvalidReason = "Invalid"
)

// DecryptionTenantsAnnotation, on a SOPS key Secret in the agent's namespace on a
// spoke, lists (comma-separated) the Tenants whose deployments may use the key. A key
// without it serves platform deployments only.
const DecryptionTenantsAnnotation = "tenancy.flotilla.dev/tenants"
