package tenancy

import (
	"fmt"
	"slices"
	"strings"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

// AlertDecision is the outcome of DecideAlert.
type AlertDecision struct {
	// Tenant owns the Alert's namespace; nil for an Alert in a platform namespace,
	// which sees every namespace and every cluster.
	Tenant *tenancyv1.Tenant
	// Reason and Message are set when the Alert is refused.
	Reason, Message string
}

// Refused reports whether the Alert may not send anything.
func (d AlertDecision) Refused() bool { return d.Reason != "" }

// DecideAlert applies the tenancy rules to an Alert: in a namespace owned by one
// Tenant, every event source must be in one of that tenant's namespaces (Cluster
// sources are checked per event with Reaches); a namespace no Tenant owns may hold
// Alerts only when it is a platform namespace.
func DecideAlert(a *notificationv1.Alert, tenants []tenancyv1.Tenant, platformNamespaces []string) AlertDecision {
	owners := Owners(a.Namespace, tenants)
	switch {
	case len(owners) > 1:
		return AlertDecision{Reason: tenancyv1.NamespaceConflictReason, Message: fmt.Sprintf("namespace %s is claimed by more than one Tenant", a.Namespace)}
	case len(owners) == 0:
		if !slices.Contains(platformNamespaces, a.Namespace) && !slices.Contains(platformNamespaces, AnyNamespace) {
			return AlertDecision{Reason: tenancyv1.NamespaceNotAllowedReason, Message: fmt.Sprintf("namespace %s belongs to no Tenant and is not a platform namespace (%s)", a.Namespace, strings.Join(platformNamespaces, ", "))}
		}
		return AlertDecision{}
	}
	t := owners[0]
	for _, s := range a.Spec.EventSources {
		if s.Kind == "Cluster" {
			continue
		}
		ns := s.Namespace
		if ns == "" {
			ns = a.Namespace
		}
		if !slices.Contains(t.Spec.Namespaces, ns) {
			return AlertDecision{Tenant: t, Reason: notificationv1.InvalidEventSourceReason, Message: fmt.Sprintf("event source %s %s/%s is outside the namespaces of Tenant %s (%s)", s.Kind, ns, s.Name, t.Name, strings.Join(t.Spec.Namespaces, ", "))}
		}
	}
	return AlertDecision{Tenant: t}
}

// Sees reports whether an Alert (as decided by DecideAlert) may be sent an
// event about an object in namespace (cluster-scoped when ""): a tenant's Alert
// sees its own namespaces only.
func (d AlertDecision) Sees(namespace string) bool {
	if d.Refused() {
		return false
	}
	return d.Tenant == nil || namespace == "" || slices.Contains(d.Tenant.Spec.Namespaces, namespace)
}
