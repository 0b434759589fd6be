package tenancy

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

func tenant(name string, namespaces, targets []string, sel *metav1.LabelSelector) tenancyv1.Tenant {
	return tenancyv1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1.TenantSpec{Namespaces: namespaces, TargetNamespaces: targets, ClusterSelector: sel}}
}

func TestDecide(t *testing.T) {
	all := &metav1.LabelSelector{}
	tenants := []tenancyv1.Tenant{
		tenant("team-a", []string{"a", "a-src"}, []string{"app-a", "app-a2"}, all),
		tenant("team-b", []string{"b"}, []string{"app-b"}, all),
		tenant("team-c", []string{"c"}, []string{"app-c"}, nil),
		tenant("dup-1", []string{"shared"}, []string{"x"}, all),
		tenant("dup-2", []string{"shared"}, []string{"y"}, all),
	}
	platform := []string{"flotilla-system"}
	cases := []struct {
		name       string
		d          Deployment
		reason     string
		tenant     string
		sa, saNS   string
		inMessages []string
	}{
		{name: "tenant defaults to its identity", d: Deployment{Namespace: "a"}, tenant: "team-a", sa: "team-a", saNS: "app-a"},
		{name: "own source in another owned namespace", d: Deployment{Namespace: "a", References: []Reference{{Kind: SourceRef, Namespace: "a-src", Name: "repo"}}}, tenant: "team-a", sa: "team-a", saNS: "app-a"},
		{name: "own identity named explicitly", d: Deployment{Namespace: "a", ServiceAccountName: "team-a", TargetNamespace: "app-a2"}, tenant: "team-a", sa: "team-a", saNS: "app-a"},
		{name: "other tenant's source", d: Deployment{Namespace: "a", References: []Reference{{Kind: SourceRef, Namespace: "b", Name: "repo"}}}, reason: tenancyv1.SourceNotAllowedReason, inMessages: []string{"b/repo", "team-a"}},
		{name: "other tenant's dependency", d: Deployment{Namespace: "a", References: []Reference{{Kind: DependencyRef, Namespace: "b", Name: "base"}}}, reason: tenancyv1.DependencyNotAllowedReason},
		{name: "target namespace not the tenant's", d: Deployment{Namespace: "a", TargetNamespace: "kube-system"}, reason: tenancyv1.TargetNamespaceNotAllowedReason, inMessages: []string{"kube-system"}},
		{name: "storage namespace not the tenant's", d: Deployment{Namespace: "a", TargetNamespace: "app-a", StorageNamespace: "kube-system"}, reason: tenancyv1.TargetNamespaceNotAllowedReason, inMessages: []string{"storageNamespace kube-system"}},
		{name: "agent identity", d: Deployment{Namespace: "a", ServiceAccountName: "flotilla-agent"}, reason: tenancyv1.ServiceAccountNotAllowedReason},
		{name: "tenant without selector reaches nothing", d: Deployment{Namespace: "c"}, reason: tenancyv1.NoClustersAllowedReason, tenant: "team-c"},
		{name: "namespace claimed twice", d: Deployment{Namespace: "shared"}, reason: tenancyv1.NamespaceConflictReason, inMessages: []string{"dup-1, dup-2"}},
		{name: "unowned namespace", d: Deployment{Namespace: "default"}, reason: tenancyv1.NamespaceNotAllowedReason, inMessages: []string{"default"}},
		{name: "platform namespace keeps its spec identity", d: Deployment{Namespace: "flotilla-system", ServiceAccountName: "ops"}, sa: "ops"},
		{name: "platform namespace may use the agent", d: Deployment{Namespace: "flotilla-system"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.d, tenants, platform)
			if got.Reason != tc.reason {
				t.Fatalf("reason %q (%s), want %q", got.Reason, got.Message, tc.reason)
			}
			if got.Refused() != (tc.reason != "") {
				t.Fatalf("Refused() = %v", got.Refused())
			}
			if tc.reason == "" || tc.tenant != "" {
				if got.TenantName() != tc.tenant {
					t.Fatalf("tenant %q, want %q", got.TenantName(), tc.tenant)
				}
			}
			if tc.reason == "" && (got.ServiceAccountName != tc.sa || got.ServiceAccountNamespace != tc.saNS) {
				t.Fatalf("identity %s/%s, want %s/%s", got.ServiceAccountNamespace, got.ServiceAccountName, tc.saNS, tc.sa)
			}
			for _, m := range tc.inMessages {
				if !strings.Contains(got.Message, m) {
					t.Fatalf("message %q lacks %q", got.Message, m)
				}
			}
		})
	}
}

func TestReachesAndIntersect(t *testing.T) {
	prod := fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"env": "prod"}}}
	dev := fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "dev", Labels: map[string]string{"env": "dev"}}}
	clusters := []fleetv1.Cluster{prod, dev}
	names := func(cs []fleetv1.Cluster) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Name)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name string
		t    *tenancyv1.Tenant
		want string
	}{
		{"platform reaches all", nil, "prod,dev"},
		{"absent selector reaches none", &tenancyv1.Tenant{}, ""},
		{"empty selector reaches all", &tenancyv1.Tenant{Spec: tenancyv1.TenantSpec{ClusterSelector: &metav1.LabelSelector{}}}, "prod,dev"},
		{"dev only", &tenancyv1.Tenant{Spec: tenancyv1.TenantSpec{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}}, "dev"},
	} {
		got, err := Intersect(tc.t, clusters)
		if err != nil {
			t.Fatal(err)
		}
		if names(got) != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, names(got), tc.want)
		}
	}
	bad := &tenancyv1.Tenant{Spec: tenancyv1.TenantSpec{ClusterSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Bogus"}}}}}
	if _, err := Reaches(bad, &prod); err == nil {
		t.Error("a bad selector must be an error, not a match")
	}
}

func TestKeyServes(t *testing.T) {
	ann := map[string]string{tenancyv1.DecryptionTenantsAnnotation: "team-a, team-b"}
	for _, tc := range []struct {
		ann    map[string]string
		tenant string
		want   bool
	}{
		{nil, "", true},
		{ann, "", true},
		{ann, "team-b", true},
		{ann, "team-c", false},
		{nil, "team-a", false},
		{map[string]string{tenancyv1.DecryptionTenantsAnnotation: "team-ab"}, "team-a", false},
	} {
		if got := KeyServes(tc.ann, tc.tenant); got != tc.want {
			t.Errorf("KeyServes(%v, %q) = %v", tc.ann, tc.tenant, got)
		}
	}
}

func TestSetupManifests(t *testing.T) {
	tn := tenant("team-a", []string{"a"}, []string{"app-a", "app-a2"}, nil)
	tn.Spec.Role = "edit"
	out, err := SetupManifests(&tn)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(string(out)), 4096)
	for {
		var o map[string]any
		if err := dec.Decode(&o); err != nil {
			break
		}
		if o == nil {
			continue
		}
		md := o["metadata"].(map[string]any)
		ns, _ := md["namespace"].(string)
		kinds = append(kinds, o["kind"].(string)+"/"+ns+"/"+md["name"].(string))
		if o["kind"] == "RoleBinding" {
			if ref := o["roleRef"].(map[string]any); ref["name"] != "edit" {
				t.Errorf("roleRef %v, want edit", ref)
			}
			sub := o["subjects"].([]any)[0].(map[string]any)
			if sub["name"] != "team-a" || sub["namespace"] != "app-a" {
				t.Errorf("subject %v, want app-a/team-a", sub)
			}
		}
	}
	want := "Namespace//app-a Namespace//app-a2 ServiceAccount/app-a/team-a RoleBinding/app-a/flotilla-tenant-team-a RoleBinding/app-a2/flotilla-tenant-team-a"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("objects:\n%s\nwant\n%s", got, want)
	}
}
