package kustomize

import (
	"bytes"
	"errors"
	"fmt"
	neturl "net/url"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// ManifestsFile is the one file of a built artifact.
const ManifestsFile = "manifests.yaml"

// Limits of one build: a tenant's source may not hold the hub's only build worker
// or its memory.
var (
	// BuildTimeout bounds one kustomize build.
	BuildTimeout = time.Minute
	// MaxOutputSize bounds the YAML one build may produce.
	MaxOutputSize = 64 << 20
)

// Build runs kustomize over files (a source artifact's content) at dir and returns the
// multi-document YAML. The build runs on an in-memory copy of the source, so it can
// read nothing outside it, refuses remote bases and any URL up front, and gives up
// after BuildTimeout or past MaxOutputSize bytes. When dir has no kustomization file,
// one is made that lists every YAML file below dir. The overlay's kustomize fields
// are built around dir, and its common metadata is set on every object.
func Build(files map[string][]byte, dir string, ov Overlay) ([]byte, error) {
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := build(files, dir, ov)
		done <- result{out, err}
	}()
	timer := time.NewTimer(BuildTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err == nil && len(r.out) > MaxOutputSize {
			return nil, fmt.Errorf("the build produced %d bytes, more than the %d allowed", len(r.out), MaxOutputSize)
		}
		return r.out, r.err
	case <-timer.C:
		// krusty cannot be interrupted: the goroutine finishes (or not) on its own,
		// with no network to wait on, while the worker moves on.
		return nil, fmt.Errorf("the build took longer than %s", BuildTimeout)
	}
}

func build(files map[string][]byte, dir string, ov Overlay) ([]byte, error) {
	if err := ov.Validate(dir); err != nil {
		return nil, err
	}
	dir = path.Clean("/" + strings.TrimPrefix(dir, "./"))
	// With an overlay, the source moves below sourceRoot so that the overlay can sit
	// beside it; error messages still name paths as they are in the source.
	root := ""
	if !ov.empty() {
		root = sourceRoot
	}
	dir = root + dir
	if dir != "/" {
		dir = strings.TrimSuffix(dir, "/")
	}
	fs := filesys.MakeFsInMemory()
	for name, data := range files {
		p := root + "/" + name
		if err := fs.MkdirAll(path.Dir(p)); err != nil {
			return nil, err
		}
		if err := fs.WriteFile(p, data); err != nil {
			return nil, err
		}
	}
	if !fs.IsDir(dir) {
		return nil, fmt.Errorf("path %q not found in the source", strings.TrimPrefix(strings.TrimPrefix(dir, root), "/"))
	}
	if !hasKustomization(fs, dir) {
		if err := generateKustomization(fs, files, root, dir); err != nil {
			return nil, err
		}
	}
	target := dir
	if root != "" {
		if err := ov.writeOverlay(fs, dir); err != nil {
			return nil, err
		}
		target = overlayRoot
	}
	if err := refuseRemote(fs, target, map[string]bool{}); err != nil {
		return nil, unroot(err, root)
	}
	opts := krusty.MakeDefaultOptions()
	// Bases may sit anywhere in the source (../base); the in-memory filesystem is
	// what keeps the build inside it.
	opts.LoadRestrictions = types.LoadRestrictionsNone
	opts.PluginConfig = types.DisabledPluginConfig()
	m, err := krusty.MakeKustomizer(opts).Run(fs, target)
	if err != nil {
		return nil, unroot(err, root)
	}
	// Write each object from its YAML node rather than through JSON (as AsYaml does),
	// so that key order and quoting survive: SOPS MACs depend on the order, and a
	// quoted "${port}" must stay a string after substitution on the spoke.
	var out bytes.Buffer
	for i, r := range m.Resources() {
		if i > 0 {
			out.WriteString("---\n")
		}
		if err := setCommonMetadata(&r.RNode, ov.CommonMetadata); err != nil {
			return nil, err
		}
		s, err := r.RNode.String()
		if err != nil {
			return nil, err
		}
		out.WriteString(s)
	}
	return out.Bytes(), nil
}

// unroot takes the in-memory location of the source out of an error message.
func unroot(err error, root string) error {
	if root == "" {
		return err
	}
	return errors.New(rootedPath.ReplaceAllString(err.Error(), "$1"))
}

// rootedPath matches sourceRoot at the start of a path in a message: absolute
// ("/source/apps") as kustomize writes it, or relative ("source/apps") as
// refuseRemote does.
var rootedPath = regexp.MustCompile(`(^|[\s"'(:=\[])/?` + regexp.QuoteMeta(strings.TrimPrefix(sourceRoot, "/")) + `/`)

func hasKustomization(fs filesys.FileSystem, dir string) bool {
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if fs.Exists(path.Join(dir, n)) {
			return true
		}
	}
	return false
}

// generateKustomization lists every .yaml/.yml file below dir that holds a Kubernetes
// object, as Flux does for plain manifests.
func generateKustomization(fs filesys.FileSystem, files map[string][]byte, root, dir string) error {
	var resources []string
	prefix := strings.TrimSuffix(dir, "/") + "/" // the source root is "/"
	for name, data := range files {
		p := root + "/" + name
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		ext := path.Ext(p)
		if ext != ".yaml" && ext != ".yml" {
			continue
		}
		if !bytes.Contains(data, []byte("apiVersion")) || !bytes.Contains(data, []byte("kind")) {
			continue
		}
		resources = append(resources, strings.TrimPrefix(p, prefix))
	}
	sort.Strings(resources)
	k := types.Kustomization{TypeMeta: types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind}, Resources: resources}
	out, err := yaml.Marshal(k)
	if err != nil {
		return err
	}
	return fs.WriteFile(path.Join(dir, konfig.DefaultKustomizationFileName()), out)
}

// refuseRemote walks the kustomization tree from dir and fails on any resource,
// component or base that is not a path inside the source: the hub never fetches
// remote bases, so that a build depends on the pinned source alone.
func refuseRemote(fs filesys.FileSystem, dir string, seen map[string]bool) error {
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	var file string
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if fs.Exists(path.Join(dir, n)) {
			file = path.Join(dir, n)
			break
		}
	}
	if file == "" {
		return nil
	}
	data, err := fs.ReadFile(file)
	if err != nil {
		return err
	}
	var k types.Kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return fmt.Errorf("%s: %w", strings.TrimPrefix(file, "/"), err)
	}
	if len(k.HelmCharts) > 0 || len(k.HelmChartInflationGenerator) > 0 || k.HelmGlobals != nil {
		return fmt.Errorf("%s: helmCharts are not built by a Kustomization; use a HelmRelease", strings.TrimPrefix(file, "/"))
	}
	refs := append(append(append([]string{}, k.Resources...), k.Components...), k.Bases...) //nolint:staticcheck // Bases is deprecated but still read by kustomize
	for _, r := range refs {
		if strings.Contains(r, "://") || strings.HasPrefix(r, "git@") {
			return fmt.Errorf("%s: remote resource %q is not allowed; vendor it into the source", strings.TrimPrefix(file, "/"), r)
		}
		p := path.Clean(path.Join(dir, r))
		if !fs.Exists(p) {
			return fmt.Errorf("%s: resource %q not found in the source (remote bases are not allowed)", strings.TrimPrefix(file, "/"), r)
		}
		if fs.IsDir(p) {
			if err := refuseRemote(fs, p, seen); err != nil {
				return err
			}
		}
	}
	// Every field that kustomize loads as a path also loads http(s) URLs: refuse any
	// URL wherever it stands, so a build never reaches the hub's network.
	if err := refuseURLs(file, data); err != nil {
		return err
	}
	// Generator, transformer and validator configs are files of their own with paths
	// in them (a PatchTransformer's path, for instance).
	for _, c := range append(append(append([]string{}, k.Generators...), k.Transformers...), k.Validators...) {
		p := path.Clean(path.Join(dir, c))
		if fs.Exists(p) && !fs.IsDir(p) {
			cfg, err := fs.ReadFile(p)
			if err != nil {
				return err
			}
			if err := refuseURLs(p, cfg); err != nil {
				return err
			}
		} else if strings.Contains(c, "\n") {
			// An inline plugin configuration.
			if err := refuseURLs(file, []byte(c)); err != nil {
				return err
			}
		} else if strings.Contains(c, "://") {
			return fmt.Errorf("%s: remote plugin configuration %q is not allowed", strings.TrimPrefix(file, "/"), c)
		}
	}
	return nil
}

// dataKeys hold values kustomize writes into objects and never loads: a URL there is
// data (an annotation linking to docs), not a fetch.
var dataKeys = map[string]bool{
	"literals": true, "commonAnnotations": true, "commonLabels": true, "labels": true,
	"pairs": true, "annotations": true, "patch": true, "value": true, "description": true,
}

// refuseURLs fails on the first string in a YAML file (every document) that names a
// remote location: scheme://host, alone or after "key=" as generator files may be.
func refuseURLs(file string, data []byte) error {
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			continue // kustomize reports unreadable files itself
		}
		if where, url := findURL(v, ""); url != "" {
			return fmt.Errorf("%s: %s names the remote location %q; the hub builds from the source alone, vendor it", strings.TrimPrefix(file, "/"), where, url)
		}
	}
	return nil
}

func findURL(v any, at string) (where, url string) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if dataKeys[k] {
				continue
			}
			if w, u := findURL(t[k], strings.TrimPrefix(at+"."+k, ".")); u != "" {
				return w, u
			}
		}
	case []any:
		for i, e := range t {
			if w, u := findURL(e, fmt.Sprintf("%s[%d]", at, i)); u != "" {
				return w, u
			}
		}
	case string:
		if isRemote(t) {
			return at, t
		}
		if _, after, ok := strings.Cut(t, "="); ok && isRemote(after) {
			return at, t
		}
	}
	return "", ""
}

func isRemote(s string) bool {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "git@") || strings.HasPrefix(s, "//") {
		return true
	}
	u, err := neturl.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}
