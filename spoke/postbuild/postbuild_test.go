package postbuild

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	sigsyaml "sigs.k8s.io/yaml"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"a": "A", "empty": "", "cluster_name": "spoke-1", "_x9": "x"}
	tests := []struct {
		in, want string
		strict   bool
		unset    string // the variable a strict expansion must report
	}{
		{in: "no refs", want: "no refs"},
		{in: "${a}", want: "A"},
		{in: "pre-${a}-post", want: "pre-A-post"},
		{in: "${a}${cluster_name}", want: "Aspoke-1"},
		{in: "${_x9}", want: "x"},
		{in: "${missing}", want: ""},
		{in: "${missing}", strict: true, unset: "missing"},
		{in: "${missing:=fallback}", want: "fallback", strict: true},
		{in: "${missing:-fallback}", want: "fallback"},
		{in: "${a:=fallback}", want: "A"},
		{in: "${empty:=fallback}", want: "fallback"},
		{in: "${empty}", want: "", strict: true},
		{in: "${missing:=}", want: "", strict: true},
		{in: "${missing:=${a}-b}", want: "A-b"},
		{in: "${missing:=${other}}", strict: true, unset: "other"},
		{in: "$${a}", want: "${a}"},
		{in: "x $${a} ${a}", want: "x ${a} A"},
		{in: "$a and $HOME stay", want: "$a and $HOME stay"},
		{in: "${1abc}", want: "${1abc}", strict: true},
		{in: "${a b}", want: "${a b}", strict: true},
		{in: "${{ github.sha }}", want: "${{ github.sha }}", strict: true},
		{in: "${a:?err}", want: "${a:?err}"},
		{in: "unterminated ${a", want: "unterminated ${a"},
		{in: "${a}}", want: "A}"},
		{in: "$$", want: "$$"},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, vars, tt.strict)
		if tt.unset != "" {
			var u *UnsetError
			if !errors.As(err, &u) || u.Name != tt.unset {
				t.Errorf("Expand(%q): error %v, want unset %q", tt.in, err, tt.unset)
			}
			continue
		}
		if err != nil {
			t.Errorf("Expand(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidateNames(t *testing.T) {
	if err := ValidateNames(map[string]string{"ok": "", "_ok2": ""}); err != nil {
		t.Fatal(err)
	}
	err := ValidateNames(map[string]string{"ok": "", "bad-name": "", "9x": ""})
	if err == nil || !strings.Contains(err.Error(), "bad-name") || !strings.Contains(err.Error(), "9x") {
		t.Fatalf("error %v does not name both bad variables", err)
	}
}

func TestSubstituteYAML(t *testing.T) {
	vars := map[string]string{"replicas": "3", "port": "8080", "name": "web", "multi": "line1\nline2: x", "flag": "true"}
	tests := []struct {
		name, in string
		want     map[string]interface{}
		strict   bool
		wantErr  string
	}{
		{
			name: "plain references take the type of their value",
			in:   "replicas: ${replicas}\nenabled: ${flag}\n",
			want: map[string]interface{}{"replicas": int64(3), "enabled": true},
		},
		{
			name: "quoted references stay strings",
			in:   "port: \"${port}\"\nsingle: '${flag}'\n",
			want: map[string]interface{}{"port": "8080", "single": "true"},
		},
		{
			name: "a value cannot inject structure",
			in:   "data:\n  v: ${multi}\n",
			want: map[string]interface{}{"data": map[string]interface{}{"v": "line1\nline2: x"}},
		},
		{
			name: "keys and nested values",
			in:   "metadata:\n  name: app-${name}\n  labels:\n    ${name}: yes-${name}\nlist:\n- ${port}\n",
			want: map[string]interface{}{
				"metadata": map[string]interface{}{"name": "app-web", "labels": map[string]interface{}{"web": "yes-web"}},
				"list":     []interface{}{int64(8080)},
			},
		},
		{
			name: "unset becomes an empty string, not null",
			in:   "v: ${nothing}\n",
			want: map[string]interface{}{"v": ""},
		},
		{
			name:    "strict mode reports the unset variable with its line",
			in:      "a: 1\nv: ${nothing}\n",
			strict:  true,
			wantErr: `line 2: variable "nothing" is not set`,
		},
		{
			name: "escapes",
			in:   "script: echo $${name} $HOME\n",
			want: map[string]interface{}{"script": "echo ${name} $HOME"},
		},
		{
			name: "JSON documents",
			in:   `{"a": "${name}", "n": "${replicas}"}`,
			want: map[string]interface{}{"a": "web", "n": "3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := SubstituteYAML([]byte(tt.in), vars, Options{Strict: tt.strict})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]interface{}{}
			if err := sigsyaml.Unmarshal(out, &got); err != nil {
				t.Fatalf("output is not YAML: %v\n%s", err, out)
			}
			if diff := cmp.Diff(normalize(tt.want), normalize(got)); diff != "" {
				t.Fatalf("(-want +got):\n%s\noutput:\n%s", diff, out)
			}
		})
	}
}

// normalize turns numbers into float64, as sigs.k8s.io/yaml returns them.
func normalize(m map[string]interface{}) interface{} {
	data, _ := sigsyaml.Marshal(m)
	var out interface{}
	_ = sigsyaml.Unmarshal(data, &out)
	return out
}

func TestSubstituteYAMLUnchanged(t *testing.T) {
	in := []byte("# a comment\nkey: value\n")
	out, err := SubstituteYAML(in, nil, Options{Strict: true})
	if err != nil || string(out) != string(in) {
		t.Fatalf("a document without references changed: %q, %v", out, err)
	}
}

func TestSubstituteObject(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]interface{}{"name": "cm-${name}"},
		"data":     map[string]interface{}{"v": "${missing:=d}"},
	}}
	if err := SubstituteObject(u, map[string]string{"name": "x"}, Options{}); err != nil {
		t.Fatal(err)
	}
	if u.GetName() != "cm-x" || u.Object["data"].(map[string]interface{})["v"] != "d" {
		t.Fatalf("got %v", u.Object)
	}
	u.SetAnnotations(map[string]string{SubstituteAnnotation: SubstituteDisabled})
	if !Disabled(u) {
		t.Fatal("the annotation does not disable substitution")
	}
}

func TestVariables(t *testing.T) {
	objs := []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "cm"}, Data: map[string]string{"a": "cm", "b": "cm"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "sec"}, Data: map[string][]byte{"b": []byte("secret"), "c": []byte("secret")}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "bad"}, Data: map[string]string{"not-a-name": "x"}},
	}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).Build()
	ctx := context.Background()

	pb := &meta.PostBuild{
		Substitute: map[string]string{"c": "inline", "d": "inline"},
		SubstituteFrom: []meta.SubstituteReference{
			{Kind: "ConfigMap", Name: "cm"},
			{Kind: "Secret", Name: "sec"},
			{Kind: "ConfigMap", Name: "absent", Optional: true},
		},
	}
	got, err := Variables(ctx, c, "apps", pb)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "cm", "b": "secret", "c": "inline", "d": "inline"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("precedence (-want +got):\n%s", diff)
	}

	pb.SubstituteFrom = append(pb.SubstituteFrom, meta.SubstituteReference{Kind: "Secret", Name: "absent"})
	if _, err := Variables(ctx, c, "apps", pb); err == nil || !strings.Contains(err.Error(), "apps/absent") {
		t.Fatalf("a missing required Secret: error %v", err)
	}
	if _, err := Variables(ctx, c, "other", &meta.PostBuild{SubstituteFrom: []meta.SubstituteReference{{Kind: "ConfigMap", Name: "cm"}}}); err == nil {
		t.Fatal("read a ConfigMap from another namespace")
	}
	if _, err := Variables(ctx, c, "apps", &meta.PostBuild{SubstituteFrom: []meta.SubstituteReference{{Kind: "ConfigMap", Name: "bad"}}}); err == nil {
		t.Fatal("an invalid variable name was accepted")
	}
}
