package postbuild

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzExpand: substitution of arbitrary text never panics, and text without "${" is
// left as it is.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"${a}", "x${b:=dflt}y", "$${a}", "${", "${a:=${b}}", "plain"} {
		f.Add(s, "value", true)
	}
	f.Fuzz(func(t *testing.T, s, val string, strict bool) {
		out, err := Expand(s, map[string]string{"a": val, "b": val, "cluster_name": "c"}, strict)
		if err == nil && !strings.Contains(s, "${") && out != s {
			t.Fatalf("Expand(%q) = %q without any reference", s, out)
		}
	})
}

// FuzzSubstituteYAML: arbitrary documents never panic the YAML substitution, and a
// document without "${" comes back byte for byte.
func FuzzSubstituteYAML(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"${a}\"\n  n: ${n}\n"))
	f.Add([]byte("- ${a}\n- [${n}, {k: ${a}}]\n"))
	f.Add([]byte("a: &x ${a}\nb: *x\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, err := SubstituteYAML(doc, map[string]string{"a": "v", "n": "3"}, Options{})
		if err == nil && !bytes.Contains(doc, []byte("${")) && !bytes.Equal(out, doc) {
			t.Fatalf("document without references changed")
		}
	})
}
