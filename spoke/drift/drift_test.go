package drift

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestDiff(t *testing.T) {
	live := func(value string, rv string, status string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]interface{}{"name": "c", "resourceVersion": rv, "generation": int64(1),
				"managedFields": []interface{}{map[string]interface{}{"manager": rv}}},
			"data":   map[string]interface{}{"value": value},
			"status": map[string]interface{}{"phase": status},
		}}
	}
	for _, tc := range []struct {
		name      string
		live, dry *unstructured.Unstructured
		want      []string
	}{
		{"same", live("a", "1", "x"), live("a", "1", "x"), nil},
		{"only server fields differ", live("a", "1", "x"), live("a", "2", "y"), nil},
		{"a value changed", live("b", "1", "x"), live("a", "2", "x"), []string{".data.value"}},
		{"a field added by hand stays when nobody declares it", func() *unstructured.Unstructured {
			u := live("a", "1", "x")
			u.Object["data"].(map[string]interface{})["extra"] = "e"
			return u
		}(), func() *unstructured.Unstructured {
			u := live("a", "1", "x")
			u.Object["data"].(map[string]interface{})["extra"] = "e"
			return u
		}(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, Diff(tc.live, tc.dry)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if got := Describe([]string{"a", "b", "c", "d", "e", "f", "g"}); got != "a, b, c, d, e and 2 more" {
		t.Errorf("Describe: %q", got)
	}
}
