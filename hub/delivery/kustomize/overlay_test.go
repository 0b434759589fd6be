package kustomize

import (
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
)

const webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        envFrom:
        - configMapRef: {name: settings}
`

const settings = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: base
`

func overlaySource() map[string][]byte {
	return map[string][]byte{
		"apps/web/kustomization.yaml":           []byte("resources: [deploy.yaml, cm.yaml]\n"),
		"apps/web/deploy.yaml":                  []byte(webDeployment),
		"apps/web/cm.yaml":                      []byte(settings),
		"components/extra/kustomization.yaml":   []byte("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [extra.yaml]\n"),
		"components/extra/extra.yaml":           []byte(strings.Replace(cm, "%s", "extra", 1)),
		"apps/web/mode/kustomization.yaml":      []byte("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n- patch: |\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: settings}\n    data: {mode: component}\n"),
		"secret-outside/kustomization.yaml":     []byte("resources: [s.yaml]\n"),
		"secret-outside/s.yaml":                 []byte(strings.Replace(cm, "%s", "secret", 1)),
		"apps/web/ignored-by-overlay/README.md": []byte("nothing"),
	}
}

// objects parses a build's output into maps keyed by kind/name.
func objects(t *testing.T, out []byte) map[string]map[string]any {
	t.Helper()
	got := map[string]map[string]any{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		md, _ := o["metadata"].(map[string]any)
		got[o["kind"].(string)+"/"+md["name"].(string)] = o
	}
	return got
}

func field(o map[string]any, path ...any) any {
	var cur any = o
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := cur.(map[string]any)
			cur = m[k]
		case int:
			l, _ := cur.([]any)
			if k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

// TestBuildOverlayFields: every overlay field does its kustomize work on the path's
// output, and common metadata lands on metadata only.
func TestBuildOverlayFields(t *testing.T) {
	ov := Overlay{
		NamePrefix: "team-", NameSuffix: "-v2",
		Components: []string{"../../components/extra", "mode"},
		Patches: []deliveryv1.Patch{
			{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n"},
			{Patch: `[{"op": "add", "path": "/data/patched", "value": "json6902"}]`,
				Target: &deliveryv1.PatchSelector{Version: "v1", Kind: "ConfigMap", Name: "^settings$"}},
			{Patch: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: any}\ndata: {selected: by-label}\n",
				Target: &deliveryv1.PatchSelector{Kind: "ConfigMap", LabelSelector: "role=extra"}},
		},
		Images: []deliveryv1.Image{{Name: "nginx", NewName: "registry.example/nginx", NewTag: "1.27"}},
		CommonMetadata: &deliveryv1.CommonMetadata{
			Labels:      map[string]string{"team": "payments"},
			Annotations: map[string]string{"owner": "payments@example.com"},
		},
	}
	files := overlaySource()
	files["components/extra/extra.yaml"] = []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  labels: {role: extra}\ndata: {k: v}\n")
	out, err := Build(files, "./apps/web", ov)
	if err != nil {
		t.Fatal(err)
	}
	got := objects(t, out)
	dep, ok := got["Deployment/team-web-v2"]
	if !ok {
		t.Fatalf("no prefixed and suffixed Deployment in\n%s", out)
	}
	for _, c := range []struct {
		what string
		got  any
		want any
	}{
		{"strategic merge patch", field(dep, "spec", "replicas"), float64(3)},
		{"image", field(dep, "spec", "template", "spec", "containers", 0, "image"), "registry.example/nginx:1.27"},
		{"reference renamed with the ConfigMap", field(dep, "spec", "template", "spec", "containers", 0, "envFrom", 0, "configMapRef", "name"), "team-settings-v2"},
		{"label", field(dep, "metadata", "labels", "team"), "payments"},
		{"annotation", field(dep, "metadata", "annotations", "owner"), "payments@example.com"},
		{"selector untouched", field(dep, "spec", "selector", "matchLabels", "team"), nil},
		{"template untouched", field(dep, "spec", "template", "metadata", "labels", "team"), nil},
		{"component patch", field(got["ConfigMap/team-settings-v2"], "data", "mode"), "component"},
		{"JSON 6902 patch on the target", field(got["ConfigMap/team-settings-v2"], "data", "patched"), "json6902"},
		{"JSON 6902 patch not on others", field(got["ConfigMap/team-extra-v2"], "data", "patched"), nil},
		{"patch selected by label", field(got["ConfigMap/team-extra-v2"], "data", "selected"), "by-label"},
		{"patch not on unlabelled", field(got["ConfigMap/team-settings-v2"], "data", "selected"), nil},
		{"component resource with label", field(got["ConfigMap/team-extra-v2"], "metadata", "labels", "team"), "payments"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v (%T), want %v\n%s", c.what, c.got, c.got, c.want, out)
		}
	}
	if len(got) != 3 {
		t.Errorf("got %d objects, want 3: %v", len(got), got)
	}
}

// TestBuildOverlayDigest: the image digest wins over the tag; an overlay on a path
// with no kustomization file and on the source root builds too.
func TestBuildOverlayDigest(t *testing.T) {
	files := map[string][]byte{"deploy.yaml": []byte(webDeployment), "cm.yaml": []byte(settings)}
	digest := "sha256:" + strings.Repeat("ab", 32)
	out, err := Build(files, "", Overlay{Images: []deliveryv1.Image{{Name: "nginx", NewTag: "ignored", Digest: digest}}})
	if err != nil {
		t.Fatal(err)
	}
	if img := field(objects(t, out)["Deployment/web"], "spec", "template", "spec", "containers", 0, "image"); img != "nginx@"+digest {
		t.Fatalf("image is %v, want nginx@%s", img, digest)
	}
}

// TestBuildOverlayRefused: components and patches cannot reach outside the source,
// and common metadata cannot set the agent's keys or a service account's.
func TestBuildOverlayRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		ov   Overlay
		want string
	}{
		"component climbing out":        {Overlay{Components: []string{"../../../etc"}}, "outside the source artifact"},
		"component climbing out deeper": {Overlay{Components: []string{"../../components/../../../x"}}, "outside the source artifact"},
		"absolute component":            {Overlay{Components: []string{"/etc/passwd"}}, "relative to spec.path"},
		"remote component":              {Overlay{Components: []string{"https://example.com/c"}}, "relative to spec.path"},
		"missing component":             {Overlay{Components: []string{"nope"}}, `component "nope" not found`},
		"component that is a file":      {Overlay{Components: []string{"cm.yaml"}}, `not found`},
		"component with remote base": {Overlay{Components: []string{"../../remote"}},
			"remote resource"},
		"patch naming a file":   {Overlay{Patches: []deliveryv1.Patch{{Patch: "../../secret-outside/s.yaml"}}}, ""},
		"agent annotation":      {Overlay{CommonMetadata: &deliveryv1.CommonMetadata{Annotations: map[string]string{"fleet.flotilla.dev/assignment": "other"}}}, "flotilla.dev domain"},
		"agent label":           {Overlay{CommonMetadata: &deliveryv1.CommonMetadata{Labels: map[string]string{"flotilla.dev/owner": "x"}}}, "flotilla.dev domain"},
		"service account token": {Overlay{CommonMetadata: &deliveryv1.CommonMetadata{Annotations: map[string]string{"kubernetes.io/service-account.name": "agent"}}}, "service account"},
	} {
		t.Run(name, func(t *testing.T) {
			files := overlaySource()
			files["remote/kustomization.yaml"] = []byte("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [https://example.com/x.yaml]\n")
			out, err := Build(files, "apps/web", tc.ov)
			if err == nil {
				t.Fatalf("built, want an error; output:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), sourceRoot) {
				t.Fatalf("error %q names the in-memory location", err)
			}
		})
	}
}

// TestOverlayKey: the build cache tells overlays apart, and no overlay keeps the
// key of a plain build.
func TestOverlayKey(t *testing.T) {
	if k := (Overlay{}).Key(); k != "" {
		t.Fatalf("empty overlay key %q", k)
	}
	a := Overlay{NamePrefix: "a-"}.Key()
	b := Overlay{NamePrefix: "b-"}.Key()
	c := Overlay{CommonMetadata: &deliveryv1.CommonMetadata{Labels: map[string]string{"x": "1"}}}.Key()
	if a == b || a == "" || c == "" || c == a {
		t.Fatalf("keys not distinct: %q %q %q", a, b, c)
	}
}

// TestUnroot: messages name paths as they are in the source, and leave alone a
// path that merely ends in "source".
func TestUnroot(t *testing.T) {
	in := errors.New(`accumulating resources: "/source/apps/web/x.yaml": source/apps/kustomization.yaml and datasource/a.yaml`)
	want := `accumulating resources: "apps/web/x.yaml": apps/kustomization.yaml and datasource/a.yaml`
	if got := unroot(in, sourceRoot).Error(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
