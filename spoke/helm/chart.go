package helm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/spoke/postbuild"
)

// DigestAnnotation, on the chart metadata Helm stores with each revision, records the
// artifact digest the revision was made from: it tells whether the release runs the
// Assignment's chart and values without comparing them.
const DigestAnnotation = "fleet.flotilla.dev/artifact-digest"

// substituteValues returns the artifact's values.yaml with vars substituted (only
// there, never in the chart's templates); as it is when vars is nil.
func substituteValues(files map[string][]byte, vars map[string]string) ([]byte, error) {
	raw := files[artifact.HelmValuesFile]
	if vars == nil {
		return raw, nil
	}
	out, err := postbuild.SubstituteYAML(raw, vars, postbuild.Options{})
	if err != nil {
		return nil, fmt.Errorf("substituting variables in %s: %w", artifact.HelmValuesFile, err)
	}
	return out, nil
}

// loadChart reads a Helm artifact: the chart below artifact.HelmChartDir, and values,
// the artifact's values.yaml as substituteValues made it.
func loadChart(files map[string][]byte, values []byte, digest string) (*chart.Chart, map[string]any, error) {
	prefix := artifact.HelmChartDir + "/"
	var names []string
	for name := range files {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("the artifact holds no chart (no files below %s)", prefix)
	}
	sort.Strings(names)
	bf := make([]*loader.BufferedFile, 0, len(names))
	for _, name := range names {
		bf = append(bf, &loader.BufferedFile{Name: strings.TrimPrefix(name, prefix), Data: files[name]})
	}
	ch, err := loader.LoadFiles(bf)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the chart: %w", err)
	}
	vals, err := chartutil.ReadValues(values)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing %s: %w", artifact.HelmValuesFile, err)
	}
	if ch.Metadata.Annotations == nil {
		ch.Metadata.Annotations = map[string]string{}
	}
	ch.Metadata.Annotations[DigestAnnotation] = digest
	return ch, vals.AsMap(), nil
}

// releaseDigest names what a release runs on this cluster: the artifact's digest,
// followed by a checksum of the values when this cluster's variables changed them
// (values against the artifact's raw values.yaml). The hub builds one artifact for
// the fleet, so a Cluster variable that changes (spec.variables, or a substituteFrom
// object on the spoke) changes this name, and the release is upgraded, though the
// artifact is the same.
func releaseDigest(digest string, raw, values []byte) string {
	if bytes.Equal(values, raw) {
		return digest
	}
	sum := sha256.Sum256(values)
	return digest + "+values:" + hex.EncodeToString(sum[:8])
}

// splitYAML splits a multi-document YAML file.
func splitYAML(data []byte) [][]byte {
	var out [][]byte
	for _, doc := range releaseutil.SplitManifests(string(data)) {
		out = append(out, []byte(doc))
	}
	return out
}
