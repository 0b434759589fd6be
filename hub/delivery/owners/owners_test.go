package owners

import (
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"github.com/flotilla-dev/flotilla/api"
)

// TestRegistryIsConsistent: every kind is served by the hub's scheme under the
// registered name and version, and its artifact accessor fits its objects.
func TestRegistryIsConsistent(t *testing.T) {
	scheme := api.NewScheme()
	seen := map[string]bool{}
	for _, k := range All() {
		if seen[k.Prefix()] {
			t.Errorf("%s: Assignment prefix %q is taken by another kind", k.Kind, k.Prefix())
		}
		seen[k.Prefix()] = true
		gvks, _, err := scheme.ObjectKinds(k.New())
		if err != nil || len(gvks) != 1 || gvks[0].Kind != k.Kind || gvks[0].GroupVersion().String() != k.APIVersion {
			t.Errorf("%s: scheme knows New() as %v (%v), want %s %s", k.Kind, gvks, err, k.APIVersion, k.Kind)
		}
		if _, _, err := scheme.ObjectKinds(k.NewList()); err != nil {
			t.Errorf("%s: NewList: %v", k.Kind, err)
		}
		if !apimeta.IsListType(k.NewList()) {
			t.Errorf("%s: NewList is no list", k.Kind)
		}
		if a := k.Artifact(k.New()); a != nil {
			t.Errorf("%s: a new object has artifact %v", k.Kind, a)
		}
		if got, ok := Lookup(k.Kind); !ok || got.Kind != k.Kind {
			t.Errorf("Lookup(%s) = %v, %v", k.Kind, got.Kind, ok)
		}
	}
	if _, ok := Lookup("Widget"); ok {
		t.Error("Lookup(Widget) found a kind")
	}
}
