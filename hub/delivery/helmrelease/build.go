package helmrelease

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

// RenderTimeout bounds one client-side render of a chart on the hub: a template can
// loop, and the build workers serve every tenant.
const RenderTimeout = time.Minute

// chartFiles returns the files of the chart at dir in files (a source artifact's
// content), relative to the chart's folder. dir "" is the one top folder the files
// share, as in a chart's .tgz.
func chartFiles(files map[string][]byte, dir string) (map[string][]byte, error) {
	if dir == "" {
		for name := range files {
			top, _, _ := strings.Cut(name, "/")
			if _, ok := files[top+"/Chart.yaml"]; ok {
				dir = top
				break
			}
		}
		if dir == "" {
			return nil, fmt.Errorf("no Chart.yaml below the chart's top folder")
		}
	}
	clean := path.Clean("/" + strings.TrimPrefix(dir, "./"))
	prefix := strings.TrimPrefix(clean, "/") + "/"
	if clean == "/" {
		prefix = ""
	}
	out := map[string][]byte{}
	for name, data := range files {
		if rel, ok := strings.CutPrefix(name, prefix); ok {
			out[rel] = data
		}
	}
	if _, ok := out["Chart.yaml"]; !ok {
		return nil, fmt.Errorf("no chart at %s: %sChart.yaml does not exist", dir, prefix)
	}
	return out, nil
}

// loadChart loads and validates a chart with Helm's own loader.
func loadChart(files map[string][]byte) (*chart.Chart, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	bf := make([]*loader.BufferedFile, 0, len(files))
	for _, n := range names {
		bf = append(bf, &loader.BufferedFile{Name: n, Data: files[n]})
	}
	ch, err := loader.LoadFiles(bf)
	if err != nil {
		return nil, fmt.Errorf("invalid chart: %w", err)
	}
	if err := checkDependencies(ch); err != nil {
		return nil, err
	}
	return ch, nil
}

// checkDependencies refuses a chart whose Chart.yaml lists a dependency its charts/
// folder lacks, as helm install does: the hub never fetches dependencies.
func checkDependencies(ch *chart.Chart) error {
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		have[d.Name()] = true
	}
	var missing []string
	for _, d := range ch.Metadata.Dependencies {
		if !have[d.Name] {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("invalid chart: dependencies missing from charts/: %s (package the chart with them, e.g. helm dependency build)", strings.Join(missing, ", "))
	}
	return nil
}

// render renders the chart with the values as helm install would for releaseName in
// namespace, on the client side only (no cluster is asked, lookup finds nothing): the
// values must pass the chart's values.schema.json, every template must render, and
// what they render must parse as Kubernetes objects. Values that hold ${var}
// placeholders are rendered as they are; each spoke substitutes them later.
func render(ch *chart.Chart, vals map[string]any, releaseName, namespace string) error {
	done := make(chan error, 1)
	go func() { done <- renderNow(ch, vals, releaseName, namespace) }()
	timer := time.NewTimer(RenderTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		// Helm's engine cannot be interrupted; the goroutine ends on its own, with no
		// network to wait on, while the worker moves on.
		return fmt.Errorf("rendering the chart took longer than %s", RenderTimeout)
	}
}

func renderNow(ch *chart.Chart, vals map[string]any, releaseName, namespace string) error {
	// The chart's dependencies are processed against a copy: Helm writes into it.
	copied, err := chartutil.Values(vals).YAML()
	if err != nil {
		return err
	}
	v, err := chartutil.ReadValues([]byte(copied))
	if err != nil {
		return err
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, v); err != nil {
		return fmt.Errorf("chart dependencies: %w", err)
	}
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(ch, v, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return err // schema errors name the values at fault
	}
	rendered, err := engine.Render(ch, rv)
	if err != nil {
		return err
	}
	if _, _, err := releaseutil.SortManifests(rendered, chartutil.DefaultVersionSet, releaseutil.InstallOrder); err != nil {
		return err
	}
	return nil
}

// pack makes the HelmRelease's artifact: the chart's files below
// artifact.HelmChartDir and the merged values in artifact.HelmValuesFile.
func pack(chartFiles map[string][]byte, values []byte) ([]byte, error) {
	files := make(map[string][]byte, len(chartFiles)+1)
	for name, data := range chartFiles {
		files[artifact.HelmChartDir+"/"+name] = data
	}
	files[artifact.HelmValuesFile] = values
	return artifact.Pack(files)
}
