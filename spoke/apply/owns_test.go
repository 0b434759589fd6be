package apply

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestOwns(t *testing.T) {
	obj := func(kind, holder string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind(kind)
		if holder != "" {
			u.SetAnnotations(map[string]string{AssignmentAnnotation: holder})
		}
		return u
	}
	for _, tc := range []struct {
		name  string
		live  *unstructured.Unstructured
		opts  Options
		taken bool
	}{
		{"ours", obj("ConfigMap", "ns/mine"), Options{Owner: "ns/mine"}, true},
		{"another deployment's", obj("ConfigMap", "ns/other"), Options{Owner: "ns/mine"}, false},
		{"another deployment's, even with adopt", obj("ConfigMap", "ns/other"), Options{Owner: "ns/mine", Adopt: true}, false},
		{"there before, no adopt", obj("ConfigMap", ""), Options{Owner: "ns/mine"}, false},
		{"there before, adopt", obj("ConfigMap", ""), Options{Owner: "ns/mine", Adopt: true}, true},
		{"a shared Namespace", obj("Namespace", "ns/other"), Options{Owner: "ns/mine"}, true},
		{"a Namespace there before", obj("Namespace", ""), Options{Owner: "ns/mine"}, true},
	} {
		err := owns(tc.live, tc.opts)
		if (err == nil) != tc.taken || (err != nil && !errors.Is(err, ErrOwnedElsewhere)) {
			t.Errorf("%s: %v, want taken=%v", tc.name, err, tc.taken)
		}
	}
}

// A Namespace declared by two deployments carries a key of each; a prune by one
// keeps it while the other's key is there.
func TestSharedNamespaceDeclarations(t *testing.T) {
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	mark(ns, "flotilla-cluster-a/ks.x.one")
	first := ns.GetAnnotations()
	if declaredByOthers(first, "flotilla-cluster-a/ks.x.one") {
		t.Fatal("a Namespace declared by one deployment counts as shared")
	}
	other := ns.DeepCopy()
	mark(other, "flotilla-cluster-a/ks.x.two")
	// The API server merges both managers' keys; the last writer holds the owner annotation.
	merged := map[string]string{}
	for k, v := range first {
		merged[k] = v
	}
	for k, v := range other.GetAnnotations() {
		merged[k] = v
	}
	if !declaredByOthers(merged, "flotilla-cluster-a/ks.x.two") || !declaredByOthers(merged, "flotilla-cluster-a/ks.x.one") {
		t.Fatalf("each deployment must see the other's declaration: %v", merged)
	}
	cm := &unstructured.Unstructured{}
	cm.SetAPIVersion("v1")
	cm.SetKind("ConfigMap")
	mark(cm, "flotilla-cluster-a/ks.x.one")
	for k := range cm.GetAnnotations() {
		if strings.HasPrefix(k, declaredByPrefix) {
			t.Errorf("a ConfigMap got a declaration key %s", k)
		}
	}
}
