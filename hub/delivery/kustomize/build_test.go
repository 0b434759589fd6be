package kustomize

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
	out, err := Build(files, "./prod", Overlay{})
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
	out, err := Build(files, "apps", Overlay{})
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
			_, err := Build(tc.files, tc.path, Overlay{})
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
	out, err := Build(files, "", Overlay{})
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

// TestBuildNeverReachesTheNetwork: every field kustomize loads as a path also loads
// URLs; a server counting requests shows that none is made, and each build says which
// field named the URL.
func TestBuildNeverReachesTheNetwork(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(strings.Replace(cm, "%s", "fetched", 1)))
	}))
	defer srv.Close()
	u := srv.URL + "/x.yaml"
	res := "resources: [cm.yaml]\n"
	base := map[string][]byte{"cm.yaml": []byte(strings.Replace(cm, "%s", "app", 1))}
	for name, tc := range map[string]struct{ kustomization, where string }{
		"configMapGenerator files":    {res + "configMapGenerator:\n- name: g\n  files: [" + u + "]\n", "configMapGenerator[0].files[0]"},
		"configMapGenerator key=file": {res + "configMapGenerator:\n- name: g\n  files: [k=" + u + "]\n", "configMapGenerator[0].files[0]"},
		"secretGenerator envs":        {res + "secretGenerator:\n- name: g\n  envs: [" + u + "]\n", "secretGenerator[0].envs[0]"},
		"patches path":                {res + "patches:\n- path: " + u + "\n", "patches[0].path"},
		"patchesStrategicMerge":       {res + "patchesStrategicMerge:\n- " + u + "\n", "patchesStrategicMerge[0]"},
		"transformers":                {res + "transformers:\n- " + u + "\n", "transformers[0]"},
		"transformer config file":     {res + "transformers: [t.yaml]\n", "path"},
		"inline transformer":          {res + "transformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  path: " + u + "\n", "path"},
		"openapi path":                {res + "openapi:\n  path: " + u + "\n", "openapi.path"},
		"replacements path":           {res + "replacements:\n- path: " + u + "\n", "replacements[0].path"},
		"crds":                        {res + "crds: [" + u + "]\n", "crds[0]"},
		"components (ssh)":            {res + "configurations: [ssh://git@example.com/x.yaml]\n", "configurations[0]"},
	} {
		files := map[string][]byte{"kustomization.yaml": []byte(tc.kustomization),
			"t.yaml": []byte("apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: " + u + "\n")}
		for k, v := range base {
			files[k] = v
		}
		_, err := Build(files, ".", Overlay{})
		if err == nil || !strings.Contains(err.Error(), tc.where) || !strings.Contains(err.Error(), "remote location") {
			t.Errorf("%s: error %v, want one naming %s", name, err, tc.where)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the builds made %d requests", n)
	}
	// A URL that is data (an annotation, a literal) is not a fetch.
	files := map[string][]byte{"cm.yaml": base["cm.yaml"], "kustomization.yaml": []byte(res +
		"commonAnnotations:\n  docs: " + u + "\nconfigMapGenerator:\n- name: g\n  literals: [url=" + u + "]\n")}
	if _, err := Build(files, ".", Overlay{}); err != nil {
		t.Fatalf("URLs as data: %v", err)
	}
}

func TestBuildOutputLimit(t *testing.T) {
	defer func(n int) { MaxOutputSize = n }(MaxOutputSize)
	MaxOutputSize = 10
	_, err := Build(map[string][]byte{"cm.yaml": []byte(strings.Replace(cm, "%s", "app", 1)), "kustomization.yaml": []byte("resources: [cm.yaml]\n")}, ".", Overlay{})
	if err == nil || !strings.Contains(err.Error(), "more than the 10 allowed") {
		t.Fatalf("error %v, want the output limit", err)
	}
}

// TestBuildRootWithoutKustomizationFile: plain manifests at the source root are
// listed too (the root is "/", whose children do not start with "//").
func TestBuildRootWithoutKustomizationFile(t *testing.T) {
	files := map[string][]byte{
		"a.yaml":     []byte(strings.Replace(cm, "%s", "a", 1)),
		"sub/b.yaml": []byte(strings.Replace(cm, "%s", "b", 1)),
	}
	for _, dir := range []string{"", ".", "./", "/"} {
		out, err := Build(files, dir, Overlay{})
		if err != nil {
			t.Fatalf("%q: %v", dir, err)
		}
		if !strings.Contains(string(out), "name: a") || !strings.Contains(string(out), "name: b") {
			t.Fatalf("%q: missing objects:\n%s", dir, out)
		}
	}
}
