package apply

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

func TestParse(t *testing.T) {
	files := map[string][]byte{
		"b.yaml": []byte(`
apiVersion: v1
kind: ConfigMap
metadata:
  name: second
  resourceVersion: "42"
data:
  replicas: "3"
---
# only a comment
---
apiVersion: v1
kind: Namespace
metadata:
  name: demo
`),
		"a.yml": []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
  namespace: team
spec:
  size: 3
`),
		"c.json":     []byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"}}]}`),
		"README.md":  []byte("not a manifest"),
		"empty.yaml": []byte("---\n---\n"),
	}
	objs, err := Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, RefOf(o).String())
	}
	want := []string{
		"CustomResourceDefinition/widgets.example.com",
		"Namespace/demo",
		"Widget/team/w",
		"ConfigMap/second",
		"Service/web",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("objects in apply order (-want +got):\n%s", d)
	}
	if rv := objs[3].GetResourceVersion(); rv != "" {
		t.Errorf("resourceVersion %q was kept; a manifest must not pin one", rv)
	}
	// Unstructured objects need integers as int64, not float64.
	if size, ok, err := unstructured.NestedInt64(objs[2].Object, "spec", "size"); !ok || err != nil || size != 3 {
		t.Errorf("spec.size = %d (%v, %v), want the integer 3", size, ok, err)
	}
}

func TestNamespaceAndMarks(t *testing.T) {
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, meta.RESTScopeRoot)
	// The client only carries the RESTMapper here; applying is tested against a real API server.
	e := New(fake.NewClientBuilder().WithRESTMapper(mapper).Build(), "test")

	obj := func(apiVersion, kind, ns string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetName("x")
		u.SetNamespace(ns)
		return u
	}
	for _, tc := range []struct {
		name, apiVersion, kind, ns, target, want string
	}{
		{"namespaced without namespace", "v1", "ConfigMap", "", "", "default"},
		{"namespaced keeps its namespace", "v1", "ConfigMap", "team", "", "team"},
		{"target namespace wins", "v1", "ConfigMap", "team", "demo", "demo"},
		{"cluster-scoped loses a namespace", "rbac.authorization.k8s.io/v1", "ClusterRole", "team", "demo", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := obj(tc.apiVersion, tc.kind, tc.ns)
			if err := e.setNamespace(u, tc.target); err != nil {
				t.Fatal(err)
			}
			if u.GetNamespace() != tc.want {
				t.Errorf("namespace %q, want %q", u.GetNamespace(), tc.want)
			}
		})
	}
	if err := e.setNamespace(obj("example.com/v1", "Widget", ""), ""); err == nil || !strings.Contains(err.Error(), "no kind Widget in version example.com/v1") {
		t.Errorf("unknown kind: %v", err)
	}

	u := obj("v1", "ConfigMap", "demo")
	u.SetLabels(map[string]string{"app": "web"})
	mark(u, "flotilla-cluster-a/app")
	want := map[string]string{"app": "web", ManagedByLabel: ManagedByValue}
	if d := cmp.Diff(want, u.GetLabels()); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	if got := u.GetAnnotations()[AssignmentAnnotation]; got != "flotilla-cluster-a/app" {
		t.Errorf("annotation %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"no kind", map[string][]byte{"x.yaml": []byte("apiVersion: v1\nmetadata:\n  name: a\n")}, "x.yaml: document 1: object has no kind"},
		{"no apiVersion", map[string][]byte{"a.yaml": []byte("---\nkind: ConfigMap\nmetadata:\n  name: a\n")}, "a.yaml: document 1: object has no apiVersion"},
		{"no name", map[string][]byte{"a.yaml": []byte("apiVersion: v1\nkind: ConfigMap\n---\n")}, "a.yaml: document 1: ConfigMap has no metadata.name"},
		{"second document", map[string][]byte{"m.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [\n")}, "m.yaml: document 2"},
		{"not an object", map[string][]byte{"m.yaml": []byte("- a\n- b\n")}, "m.yaml: document 1 is not an object"},
		{"duplicate", map[string][]byte{
			"a.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
			"b.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
		}, "b.yaml: ConfigMap/a is also defined in a.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestEntryIDs(t *testing.T) {
	for _, ref := range []ObjectRef{
		{Version: "v1", Kind: "ConfigMap", Namespace: "demo", Name: "cfg"},
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "demo", Name: "web.v2"},
		{Version: "v1", Kind: "Namespace", Name: "demo"},
		{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition", Name: "widgets.example.com"},
	} {
		e := ref.Entry()
		back, err := ParseEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(ref, back); d != "" {
			t.Errorf("%s does not round-trip (-want +got):\n%s", e.ID, d)
		}
	}
	if got := EntryID("demo", "cfg", "", "ConfigMap"); got != "demo_cfg__ConfigMap" {
		t.Errorf("ID %q", got)
	}
	if got := EntryID("", "demo", "", "Namespace"); got != "_demo__Namespace" {
		t.Errorf("ID %q", got)
	}
	for _, bad := range []fleetv1.InventoryEntry{
		{ID: "demo_cfg_ConfigMap", Version: "v1"},
		{ID: "demo_cfg__ConfigMap", Version: ""},
		{ID: "demo__apps_Deployment", Version: "v1"},
	} {
		if _, err := ParseEntry(bad); err == nil {
			t.Errorf("ParseEntry(%+v) did not fail", bad)
		}
	}
}

func TestDiffAndMerge(t *testing.T) {
	e := func(id, v string) fleetv1.InventoryEntry { return fleetv1.InventoryEntry{ID: id, Version: v} }
	old := []fleetv1.InventoryEntry{e("a_x__ConfigMap", "v1"), e("a_y_apps_Deployment", "v1beta1"), e("_a__Namespace", "v1")}
	keep := []fleetv1.InventoryEntry{e("_a__Namespace", "v1"), e("a_y_apps_Deployment", "v1"), e("a_z__Secret", "v1")}

	if d := cmp.Diff([]fleetv1.InventoryEntry{e("a_x__ConfigMap", "v1")}, Diff(old, keep)); d != "" {
		t.Errorf("Diff (-want +got):\n%s", d)
	}
	want := []fleetv1.InventoryEntry{e("a_x__ConfigMap", "v1"), e("a_y_apps_Deployment", "v1"), e("_a__Namespace", "v1"), e("a_z__Secret", "v1")}
	if d := cmp.Diff(want, Merge(old, keep)); d != "" {
		t.Errorf("Merge (-want +got):\n%s", d)
	}
	if len(old) != 3 || old[1].Version != "v1beta1" {
		t.Errorf("Merge changed its input: %v", old)
	}
}

func TestSortForDelete(t *testing.T) {
	refs := []ObjectRef{
		{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition", Name: "c"},
		{Kind: "Namespace", Name: "n"},
		{Kind: "ConfigMap", Namespace: "n", Name: "a"},
		{Group: "example.com", Kind: "Widget", Namespace: "n", Name: "w"},
	}
	sortForDelete(refs)
	var got []string
	for _, r := range refs {
		got = append(got, r.String())
	}
	want := []string{"ConfigMap/n/a", "Widget/n/w", "Namespace/n", "CustomResourceDefinition/c"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("delete order (-want +got):\n%s", d)
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		actions []Action
		want    string
	}{
		{nil, "0 objects"},
		{[]Action{Created}, "1 object (1 created)"},
		{[]Action{Created, Unchanged, Unchanged}, "3 objects (1 created, 2 unchanged)"},
		{[]Action{Unchanged, Configured}, "2 objects (1 configured, 1 unchanged)"},
	} {
		r := &Result{}
		for _, a := range tc.actions {
			r.Changes = append(r.Changes, Change{Action: a})
		}
		if got := r.Summary(); got != tc.want {
			t.Errorf("Summary() = %q, want %q", got, tc.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	err := &Error{Failed: []*ObjectError{
		{Ref: ObjectRef{Kind: "Service", Namespace: "demo", Name: "web"}, Err: errString("spec.ports: Required value")},
		{Ref: ObjectRef{Kind: "ConfigMap", Name: "x", Namespace: "demo"}, Err: errString("boom")},
	}}
	want := "Service/demo/web: spec.ports: Required value (and 1 more failed)"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestPlan: the entries recorded before a pass are those the pass gives its objects,
// also for kinds the spoke does not serve yet (a CRD of the same artifact says their
// scope), and the objects are left as they were.
func TestPlan(t *testing.T) {
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	mapper.Add(schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, meta.RESTScopeRoot)
	e := New(fake.NewClientBuilder().WithRESTMapper(mapper).Build(), "test")
	objs, err := Parse(map[string][]byte{"m.yaml": []byte(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec: {group: example.com, scope: Cluster, names: {kind: Gadget, plural: gadgets}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec: {group: example.com, scope: Namespaced, names: {kind: Widget, plural: widgets}}
---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: elsewhere}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r, namespace: ignored}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: other.example.com/v1
kind: Unknown
metadata: {name: u}
`)})
	if err != nil {
		t.Fatal(err)
	}
	before := make([]string, len(objs))
	for i, u := range objs {
		before[i] = RefOf(u).ID()
	}
	var got []string
	for _, en := range e.Plan(objs, "demo") {
		got = append(got, en.ID+"@"+en.Version)
	}
	want := []string{
		"_gadgets.example.com_apiextensions.k8s.io_CustomResourceDefinition@v1",
		"_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition@v1",
		"_demo__Namespace@v1",
		"demo_a__ConfigMap@v1",
		"_r_rbac.authorization.k8s.io_ClusterRole@v1",
		"_g_example.com_Gadget@v1",
		"demo_w_example.com_Widget@v1",
		// Not served, not declared: taken as namespaced.
		"demo_u_other.example.com_Unknown@v1",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("planned entries (-want +got):\n%s", d)
	}
	for i, u := range objs {
		if RefOf(u).ID() != before[i] {
			t.Errorf("Plan changed object %d: %s, was %s", i, RefOf(u).ID(), before[i])
		}
	}
}
