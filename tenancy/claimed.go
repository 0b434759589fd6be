package tenancy

import (
	"context"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

// Claimed reports whether a Tenant claims namespace, even a Tenant being deleted:
// what the hub dials for an object there is held to the tenants' egress rules
// (tenancy/egress) until no Tenant names the namespace any more.
func Claimed(ctx context.Context, c client.Reader, namespace string) (bool, error) {
	var tenants tenancyv1.TenantList
	if err := c.List(ctx, &tenants); err != nil {
		return false, fmt.Errorf("listing Tenants: %w", err)
	}
	return slices.ContainsFunc(tenants.Items, func(t tenancyv1.Tenant) bool {
		return slices.Contains(t.Spec.Namespaces, namespace)
	}), nil
}
