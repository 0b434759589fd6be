package registration

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
)

// agentRules is everything an agent may do on the hub, all inside its own namespace:
// read its Assignments and trust bundle, report status, renew its Lease, record Events.
func agentRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{fleetv1.GroupVersion.Group}, Resources: []string{"assignments"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{fleetv1.GroupVersion.Group}, Resources: []string{"assignments/status"}, Verbs: []string{"get", "patch", "update"}},
		// The trust bundle the hub publishes into the namespace, for key rotation.
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
}

// ensureAgentAccess creates (or repairs) the agent's ServiceAccount, Role and
// RoleBinding in the cluster's hub namespace and returns the ServiceAccount.
func ensureAgentAccess(ctx context.Context, c client.Client, cluster string) (*corev1.ServiceAccount, error) {
	ns := fleetv1.ClusterNamespace(cluster)
	labels := map[string]string{ClusterLabel: cluster}
	name := registration.AgentServiceAccount

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, sa, func() error {
		sa.Labels = merge(sa.Labels, labels)
		return nil
	}); err != nil {
		return nil, err
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, role, func() error {
		role.Labels = merge(role.Labels, labels)
		role.Rules = agentRules()
		return nil
	}); err != nil {
		return nil, err
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, rb, func() error {
		rb.Labels = merge(rb.Labels, labels)
		rb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}
		rb.Subjects = []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}}
		return nil
	}); err != nil {
		// roleRef cannot change; a binding made by hand to another role is replaced.
		if apierrors.IsInvalid(err) {
			if err := c.Delete(ctx, rb); client.IgnoreNotFound(err) != nil {
				return nil, err
			}
			return ensureAgentAccess(ctx, c, cluster)
		}
		return nil, err
	}
	return sa, nil
}

// Revoke takes away a cluster's hub credential and any unused bootstrap token. The
// credential is a token bound to the agent's ServiceAccount, so deleting the
// ServiceAccount makes the API server refuse it (401) from then on; the Role and
// RoleBinding go too, so that a ServiceAccount re-created by hand gains nothing.
func Revoke(ctx context.Context, c client.Client, systemNamespace, cluster string) error {
	ns := fleetv1.ClusterNamespace(cluster)
	name := registration.AgentServiceAccount
	var errs []error
	for _, obj := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: BootstrapTokenSecretName(cluster)}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
	} {
		if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func merge(a, b map[string]string) map[string]string {
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}
