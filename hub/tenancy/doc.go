// Package tenancy is the hub's Tenant controller: it checks each Tenant (selector,
// namespaces no other Tenant claims), builds the objects that set the tenant up on a
// spoke (package tenancy's SetupManifests) into one signed artifact, and hands it to
// the deployment engine for the clusters the tenant reaches, so the tenant's
// namespaces, identity and bindings appear on every such cluster and are pruned from
// clusters it no longer reaches.
package tenancy
