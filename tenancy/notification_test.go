package tenancy

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

func TestDecideAlert(t *testing.T) {
	tenants := []tenancyv1.Tenant{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: tenancyv1.TenantSpec{Namespaces: []string{"a1", "a2"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: tenancyv1.TenantSpec{Namespaces: []string{"b1"}}},
	}
	alert := func(ns string, sources ...notificationv1.EventSource) *notificationv1.Alert {
		return &notificationv1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x"}, Spec: notificationv1.AlertSpec{EventSources: sources}}
	}
	ks := func(ns string) notificationv1.EventSource {
		return notificationv1.EventSource{Kind: "Kustomization", Name: "*", Namespace: ns}
	}
	for _, tc := range []struct {
		name       string
		alert      *notificationv1.Alert
		wantReason string
		sees, not  []string
	}{
		{"own namespace", alert("a1", ks("")), "", []string{"a1", "a2", ""}, []string{"b1", "flotilla-system"}},
		{"another namespace of the tenant", alert("a1", ks("a2")), "", nil, nil},
		{"another tenant's namespace", alert("a1", ks("a2"), ks("b1")), notificationv1.InvalidEventSourceReason, nil, []string{"a1", "b1"}},
		{"a platform namespace", alert("a1", ks("flotilla-system")), notificationv1.InvalidEventSourceReason, nil, nil},
		{"clusters are checked per event", alert("a1", notificationv1.EventSource{Kind: "Cluster", Name: "*", Namespace: "b1"}), "", nil, nil},
		{"platform Alert sees all", alert("flotilla-system", ks("b1")), "", []string{"a1", "b1"}, nil},
		{"a namespace of nobody", alert("stray", ks("")), tenancyv1.NamespaceNotAllowedReason, nil, []string{"stray"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideAlert(tc.alert, tenants, []string{"flotilla-system"})
			if d.Reason != tc.wantReason {
				t.Fatalf("reason %q (%s), want %q", d.Reason, d.Message, tc.wantReason)
			}
			for _, ns := range tc.sees {
				if !d.Sees(ns) {
					t.Errorf("does not see %q", ns)
				}
			}
			for _, ns := range tc.not {
				if d.Sees(ns) {
					t.Errorf("sees %q", ns)
				}
			}
		})
	}
}
