package tenancy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

// RefKind says what a deployment names in another object, and so which rule a
// reference outside the tenant breaks.
type RefKind string

// What a deployment may name.
const (
	SourceRef     RefKind = "source"
	DependencyRef RefKind = "dependency"
	ValuesRef     RefKind = "values"
)

var refReasons = map[RefKind]string{
	SourceRef:     tenancyv1.SourceNotAllowedReason,
	DependencyRef: tenancyv1.DependencyNotAllowedReason,
	ValuesRef:     tenancyv1.SourceNotAllowedReason,
}

// Reference is one object a deployment names on the hub.
type Reference struct {
	Kind      RefKind
	Namespace string // the deployment's own when empty
	Name      string
}

// Deployment is what the rules look at in a Kustomization or HelmRelease.
type Deployment struct {
	Namespace          string
	ServiceAccountName string
	TargetNamespace    string
	// StorageNamespace is where a Helm release keeps its history on the spokes;
	// like TargetNamespace it must be one of a tenant's target namespaces.
	StorageNamespace string
	References       []Reference
}

// Decision is the outcome of Decide.
type Decision struct {
	// Tenant owns the deployment's namespace; nil for a platform deployment.
	Tenant *tenancyv1.Tenant
	// Reason and Message are set when the deployment is refused.
	Reason, Message string
	// ServiceAccountName and ServiceAccountNamespace are the identity the
	// Assignments carry: the tenant's for a tenant, the spec's for the platform.
	ServiceAccountName, ServiceAccountNamespace string
}

// Refused reports whether the deployment may not be deployed.
func (d Decision) Refused() bool { return d.Reason != "" }

// TenantName is the owning tenant's name, "" for the platform.
func (d Decision) TenantName() string {
	if d.Tenant == nil {
		return ""
	}
	return d.Tenant.Name
}

// Owners returns the Tenants that claim namespace, sorted by name.
func Owners(namespace string, tenants []tenancyv1.Tenant) []*tenancyv1.Tenant {
	var out []*tenancyv1.Tenant
	for i := range tenants {
		if tenants[i].DeletionTimestamp == nil && slices.Contains(tenants[i].Spec.Namespaces, namespace) {
			out = append(out, &tenants[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AnyNamespace, as a platform namespace, makes every namespace no Tenant owns a
// platform namespace: for local development and tests only.
const AnyNamespace = "*"

// Decide applies the tenancy rules to a deployment: a namespace owned by one Tenant
// makes it that tenant's, held to its namespaces and identity; a namespace no Tenant
// owns is allowed only when it is a platform namespace.
func Decide(d Deployment, tenants []tenancyv1.Tenant, platformNamespaces []string) Decision {
	owners := Owners(d.Namespace, tenants)
	switch {
	case len(owners) > 1:
		names := make([]string, len(owners))
		for i, t := range owners {
			names[i] = t.Name
		}
		return refuse(tenancyv1.NamespaceConflictReason, "namespace %s is claimed by Tenants %s; nothing in it is deployed until only one claims it", d.Namespace, strings.Join(names, ", "))
	case len(owners) == 0:
		if !slices.Contains(platformNamespaces, d.Namespace) && !slices.Contains(platformNamespaces, AnyNamespace) {
			return refuse(tenancyv1.NamespaceNotAllowedReason, "namespace %s belongs to no Tenant and is not a platform namespace (%s)", d.Namespace, strings.Join(platformNamespaces, ", "))
		}
		return Decision{ServiceAccountName: d.ServiceAccountName}
	}
	t := owners[0]
	for _, r := range d.References {
		ns := r.Namespace
		if ns == "" {
			ns = d.Namespace
		}
		if !slices.Contains(t.Spec.Namespaces, ns) {
			return refuse(refReasons[r.Kind], "%s %s/%s is outside the namespaces of Tenant %s (%s)", r.Kind, ns, r.Name, t.Name, strings.Join(t.Spec.Namespaces, ", "))
		}
	}
	if d.TargetNamespace != "" && !slices.Contains(t.Spec.TargetNamespaces, d.TargetNamespace) {
		return refuse(tenancyv1.TargetNamespaceNotAllowedReason, "targetNamespace %s is not one of Tenant %s's target namespaces (%s)", d.TargetNamespace, t.Name, strings.Join(t.Spec.TargetNamespaces, ", "))
	}
	if d.StorageNamespace != "" && !slices.Contains(t.Spec.TargetNamespaces, d.StorageNamespace) {
		return refuse(tenancyv1.TargetNamespaceNotAllowedReason, "storageNamespace %s is not one of Tenant %s's target namespaces (%s)", d.StorageNamespace, t.Name, strings.Join(t.Spec.TargetNamespaces, ", "))
	}
	if d.ServiceAccountName != "" && d.ServiceAccountName != t.IdentityName() {
		return refuse(tenancyv1.ServiceAccountNotAllowedReason, "serviceAccountName %s is not Tenant %s's identity %s; leave it empty or name that one", d.ServiceAccountName, t.Name, t.IdentityName())
	}
	if t.Spec.ClusterSelector == nil {
		return Decision{Tenant: t, Reason: tenancyv1.NoClustersAllowedReason, Message: fmt.Sprintf("Tenant %s has no clusterSelector, so it reaches no cluster", t.Name)}
	}
	return Decision{Tenant: t, ServiceAccountName: t.IdentityName(), ServiceAccountNamespace: t.IdentityNamespace()}
}

func refuse(reason, format string, args ...any) Decision {
	return Decision{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Reaches reports whether a tenant may reach cluster c: an absent selector reaches
// none, an empty one all. A nil tenant (the platform) reaches every cluster.
func Reaches(t *tenancyv1.Tenant, c *fleetv1.Cluster) (bool, error) {
	if t == nil {
		return true, nil
	}
	if t.Spec.ClusterSelector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(t.Spec.ClusterSelector)
	if err != nil {
		return false, fmt.Errorf("Tenant %s clusterSelector: %w", t.Name, err)
	}
	return sel.Matches(labels.Set(c.Labels)), nil
}

// Intersect keeps the clusters the tenant reaches, in order.
func Intersect(t *tenancyv1.Tenant, clusters []fleetv1.Cluster) ([]fleetv1.Cluster, error) {
	if t == nil {
		return clusters, nil
	}
	out := make([]fleetv1.Cluster, 0, len(clusters))
	for i := range clusters {
		ok, err := Reaches(t, &clusters[i])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, clusters[i])
		}
	}
	return out, nil
}

// KeyServes reports whether a SOPS key Secret with the given annotations may decrypt
// for tenant ("" for the platform): platform deployments may use any key, a tenant
// only the keys whose tenancyv1.DecryptionTenantsAnnotation names it.
func KeyServes(annotations map[string]string, tenant string) bool {
	if tenant == "" {
		return true
	}
	for _, n := range strings.Split(annotations[tenancyv1.DecryptionTenantsAnnotation], ",") {
		if strings.TrimSpace(n) == tenant {
			return true
		}
	}
	return false
}
