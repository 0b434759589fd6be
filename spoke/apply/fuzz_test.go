package apply

import "testing"

// FuzzParse: arbitrary manifest files never panic the parser, and every object it
// accepts has a kind, an apiVersion and a name.
func FuzzParse(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: b\n---\napiVersion: v1\nkind: List\nitems: []\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\"}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Parse(map[string][]byte{"manifests.yaml": data})
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.GetKind() == "" || o.GetAPIVersion() == "" || o.GetName() == "" {
				t.Fatalf("accepted an object without kind, apiVersion or name: %v", o.Object)
			}
		}
	})
}
