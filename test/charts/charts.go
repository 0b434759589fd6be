package charts

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"
)

// Chart describes a chart to make. Files are keyed by their path inside the chart
// (templates/x.yaml, crds/y.yaml, values.schema.json, ...).
type Chart struct {
	Name    string
	Version string
	// Values are the chart's default values (values.yaml).
	Values map[string]any
	// Files are the chart's other files.
	Files map[string]string
}

// ConfigMapTemplate renders a ConfigMap named after the release whose data holds
// the chart version and the values greeting and cluster.
const ConfigMapTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
  labels:
    app.kubernetes.io/managed-by: {{ .Release.Service }}
data:
  chartVersion: {{ .Chart.Version | quote }}
  greeting: {{ .Values.greeting | quote }}
  cluster: {{ .Values.cluster | default "" | quote }}
`

// Simple is a chart with one ConfigMap (ConfigMapTemplate) and default values
// greeting: hello.
func Simple(name, version string) Chart {
	return Chart{
		Name: name, Version: version,
		Values: map[string]any{"greeting": "hello"},
		Files:  map[string]string{"templates/configmap.yaml": ConfigMapTemplate},
	}
}

// With returns a copy of c with more (or replaced) files.
func (c Chart) With(files map[string]string) Chart {
	out := c
	out.Files = map[string]string{}
	for k, v := range c.Files {
		out.Files[k] = v
	}
	for k, v := range files {
		out.Files[k] = v
	}
	return out
}

// TestHook is a chart test: a Pod with the helm.sh/hook: test annotation. kwok moves a
// Pod labelled with the phase it should end in (Succeeded or Failed) there, when the
// spoke's kwok runs the test stages (test/env).
func TestHook(phase string) map[string]string {
	return map[string]string{"templates/tests/test.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation
  labels:
    ` + PhaseLabel + `: ` + phase + `
spec:
  restartPolicy: Never
  containers:
  - name: test
    image: busybox
`}
}

// PhaseLabel on a Pod tells the test kwok stages which phase to end it in.
const PhaseLabel = "test.flotilla.dev/phase"

// CRD is a chart's crds/ file defining kind <Kind> in group <group> (plural <plural>).
func CRD(group, kind, plural string) map[string]string {
	return map[string]string{"crds/" + plural + ".yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ` + plural + "." + group + `
spec:
  group: ` + group + `
  names:
    kind: ` + kind + `
    plural: ` + plural + `
    singular: ` + strings.ToLower(kind) + `
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`}
}

// Broken is a template the API server refuses at install or upgrade (a ConfigMap
// whose data key is not a valid key), while the chart itself loads and renders.
func Broken() map[string]string {
	return map[string]string{"templates/broken.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-broken
data:
  "not a valid key!": "x"
`}
}

// Object returns c as a loaded Helm chart.
func (c Chart) Object(t testing.TB) *chart.Chart {
	t.Helper()
	ch, err := loader.LoadFiles(c.bufferedFiles(t))
	if err != nil {
		t.Fatalf("loading chart %s: %v", c.Name, err)
	}
	return ch
}

// FilesUnder returns the chart's files below prefix (e.g. "charts/podinfo/"), as a
// Git repository or an OCI artifact holds them.
func (c Chart) FilesUnder(t testing.TB, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range c.bufferedFiles(t) {
		out[prefix+f.Name] = string(f.Data)
	}
	return out
}

// Package returns the chart's .tgz, as `helm package` makes it.
func (c Chart) Package(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	p, err := chartutil.Save(c.Object(t), dir)
	if err != nil {
		t.Fatalf("packaging chart %s: %v", c.Name, err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// SaveTo writes the chart's .tgz into dir (a chart repository's folder) and returns
// its path.
func (c Chart) SaveTo(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, c.Name+"-"+c.Version+".tgz")
	if err := os.WriteFile(p, c.Package(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (c Chart) bufferedFiles(t testing.TB) []*loader.BufferedFile {
	t.Helper()
	meta := chart.Metadata{APIVersion: chart.APIVersionV2, Name: c.Name, Version: c.Version, AppVersion: c.Version, Type: "application"}
	chartYAML, err := yaml.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	values := []byte("{}\n")
	if c.Values != nil {
		if values, err = yaml.Marshal(c.Values); err != nil {
			t.Fatal(err)
		}
	}
	files := []*loader.BufferedFile{{Name: "Chart.yaml", Data: chartYAML}, {Name: "values.yaml", Data: values}}
	names := make([]string, 0, len(c.Files))
	for n := range c.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, &loader.BufferedFile{Name: n, Data: bytes.Clone([]byte(c.Files[n]))})
	}
	return files
}
