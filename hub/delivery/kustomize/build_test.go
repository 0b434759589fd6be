package kustomize

import (
	"strings"
	"testing"
)

const cm = `apiVersion: v1
kind: ConfigMap
metadata:
  name: %s
data:
  k: v
`

func TestBuildOverlayWithBase(t *testing.T) {
	files := map[string][]byte{
		"base/kustomization.yaml": []byte("resources: [cm.yaml]\n"),
		"base/cm.yaml":            []byte(strings.Replace(cm, "%s", "app", 1)),
		"prod/kustomization.yaml": []byte("resources: [../base]\nnamePrefix: prod-\n"),
	}
	out, err := Build(files, "./prod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "name: prod-app") {
		t.Fatalf("overlay not applied:\n%s", out)
	}
}

func TestBuildWithoutKustomizationFile(t *testing.T) {
	files := map[string][]byte{
		"apps/a.yaml":     []byte(strings.Replace(cm, "%s", "a", 1)),
		"apps/sub/b.yml":  []byte(strings.Replace(cm, "%s", "b", 1)),
		"apps/README.md":  []byte("# not yaml"),
		"apps/notes.yaml": []byte("just: data\n"),
	}
	out, err := Build(files, "apps")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "name: a") || !strings.Contains(string(out), "name: b") {
		t.Fatalf("missing objects:\n%s", out)
	}
}

func TestBuildErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string][]byte
		path  string
		want  string
	}{
		"remote base": {
			files: map[string][]byte{"kustomization.yaml": []byte("resources:\n- https://github.com/x/y//base?ref=main\n")},
			want:  "remote resource",
		},
		"missing resource": {
			files: map[string][]byte{"kustomization.yaml": []byte("resources: [nope.yaml]\n")},
			want:  "not found in the source",
		},
		"escaping the source": {
			files: map[string][]byte{"a/kustomization.yaml": []byte("resources: [../../../etc]\n")},
			path:  "a",
			want:  "not found in the source",
		},
		"broken manifest": {
			files: map[string][]byte{
				"kustomization.yaml": []byte("resources: [cm.yaml]\n"),
				"cm.yaml":            []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n"),
			},
			want: "cm.yaml",
		},
		"missing path": {
			files: map[string][]byte{"kustomization.yaml": []byte("resources: []\n")},
			path:  "nowhere",
			want:  `path "nowhere" not found`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Build(tc.files, tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestBuildKeepsKeyOrderAndQuotes(t *testing.T) {
	files := map[string][]byte{
		"kustomization.yaml": []byte("resources: [cm.yaml]\n"),
		"cm.yaml":            []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  zeta: \"${port}\"\n  alpha: plain\n"),
	}
	out, err := Build(files, "")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.Contains(s, `zeta: "${port}"`) {
		t.Fatalf("quotes lost:\n%s", s)
	}
	if strings.Index(s, "zeta") > strings.Index(s, "alpha") {
		t.Fatalf("keys reordered:\n%s", s)
	}
}
