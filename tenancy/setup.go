package tenancy

import (
	"bytes"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

// TenantLabel marks every spoke object that sets a tenant up; its value is the
// Tenant's name.
const TenantLabel = "tenancy.flotilla.dev/tenant"

// SetupManifests renders what a tenant needs on each cluster it reaches, and nothing
// more: its target namespaces, its ServiceAccount in the first of them, and in each a
// RoleBinding of that account to spec.role. The output is one multi-document YAML
// file, the same for every cluster, in a stable order.
func SetupManifests(t *tenancyv1.Tenant) ([]byte, error) {
	lbl := map[string]string{TenantLabel: t.Name}
	var objs []any
	for _, ns := range t.Spec.TargetNamespaces {
		objs = append(objs, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: lbl},
		})
	}
	objs = append(objs, &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: t.IdentityName(), Namespace: t.IdentityNamespace(), Labels: lbl},
	})
	for _, ns := range t.Spec.TargetNamespaces {
		objs = append(objs, &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: "flotilla-tenant-" + t.Name, Namespace: ns, Labels: lbl},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: t.RoleName()},
			Subjects: []rbacv1.Subject{{
				Kind: rbacv1.ServiceAccountKind, Name: t.IdentityName(), Namespace: t.IdentityNamespace(),
			}},
		})
	}
	var out bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		// creationTimestamp: null is noise the apply would carry.
		b = bytes.ReplaceAll(b, []byte("  creationTimestamp: null\n"), nil)
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes(), nil
}
