package engine

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/flotilla-dev/flotilla/api/conditions"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/tenancy"
)

// Admit applies the tenancy rules to a deployment before anything is read, built or
// assigned for it. A refused deployment is marked Ready=False and Stalled with the
// rule's reason, and an event says why; the caller then stops, leaving every
// Assignment as it was. A Tenant or spec change wakes the deployment again.
func (e *Engine) Admit(ctx context.Context, owner Owner, d tenancy.Deployment) (tenancy.Decision, error) {
	var tenants tenancyv1.TenantList
	if err := e.Client.List(ctx, &tenants); err != nil {
		return tenancy.Decision{}, err
	}
	dec := tenancy.Decide(d, tenants.Items, e.PlatformNamespaces)
	if dec.Refused() {
		conditions.MarkStalled(owner, dec.Reason, dec.Message)
		e.event(owner, corev1.EventTypeWarning, dec.Reason, dec.Message)
	}
	return dec, nil
}
