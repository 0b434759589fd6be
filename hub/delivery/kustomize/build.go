package kustomize

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// ManifestsFile is the one file of a built artifact.
const ManifestsFile = "manifests.yaml"

// Build runs kustomize over files (a source artifact's content) at dir and returns the
// multi-document YAML. The build runs on an in-memory copy of the source, so it can
// read nothing outside it, and refuses remote bases up front. When dir has no
// kustomization file, one is made that lists every YAML file below dir.
func Build(files map[string][]byte, dir string) ([]byte, error) {
	dir = path.Clean("/" + strings.TrimPrefix(dir, "./"))
	fs := filesys.MakeFsInMemory()
	for name, data := range files {
		p := "/" + name
		if err := fs.MkdirAll(path.Dir(p)); err != nil {
			return nil, err
		}
		if err := fs.WriteFile(p, data); err != nil {
			return nil, err
		}
	}
	if !fs.IsDir(dir) {
		return nil, fmt.Errorf("path %q not found in the source", strings.TrimPrefix(dir, "/"))
	}
	if !hasKustomization(fs, dir) {
		if err := generateKustomization(fs, files, dir); err != nil {
			return nil, err
		}
	}
	if err := refuseRemote(fs, dir, map[string]bool{}); err != nil {
		return nil, err
	}
	opts := krusty.MakeDefaultOptions()
	// Bases may sit anywhere in the source (../base); the in-memory filesystem is
	// what keeps the build inside it.
	opts.LoadRestrictions = types.LoadRestrictionsNone
	opts.PluginConfig = types.DisabledPluginConfig()
	m, err := krusty.MakeKustomizer(opts).Run(fs, dir)
	if err != nil {
		return nil, err
	}
	// Write each object from its YAML node rather than through JSON (as AsYaml does),
	// so that key order and quoting survive: SOPS MACs depend on the order, and a
	// quoted "${port}" must stay a string after substitution on the spoke.
	var out bytes.Buffer
	for i, r := range m.Resources() {
		if i > 0 {
			out.WriteString("---\n")
		}
		s, err := r.RNode.String()
		if err != nil {
			return nil, err
		}
		out.WriteString(s)
	}
	return out.Bytes(), nil
}

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
func generateKustomization(fs filesys.FileSystem, files map[string][]byte, dir string) error {
	var resources []string
	for name, data := range files {
		p := "/" + name
		if !strings.HasPrefix(p, dir+"/") {
			continue
		}
		ext := path.Ext(p)
		if ext != ".yaml" && ext != ".yml" {
			continue
		}
		if !bytes.Contains(data, []byte("apiVersion")) || !bytes.Contains(data, []byte("kind")) {
			continue
		}
		resources = append(resources, strings.TrimPrefix(p, dir+"/"))
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
	return nil
}
