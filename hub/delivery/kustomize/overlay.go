package kustomize

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
)

// Overlay is what a Kustomization's spec adds around its path: kustomize fields
// built in an overlay whose only resource is the path, then common metadata set on
// every object.
type Overlay struct {
	NamePrefix     string
	NameSuffix     string
	Patches        []deliveryv1.Patch
	Images         []deliveryv1.Image
	Components     []string
	CommonMetadata *deliveryv1.CommonMetadata
}

// OverlayOf returns the overlay fields of a Kustomization's spec.
func OverlayOf(s *deliveryv1.KustomizationSpec) Overlay {
	return Overlay{
		NamePrefix: s.NamePrefix, NameSuffix: s.NameSuffix, Patches: s.Patches, Images: s.Images,
		Components: s.Components, CommonMetadata: s.CommonMetadata,
	}
}

// Key is a stable string of the overlay, part of the build cache key: the same
// source, path and overlay always build the same output.
func (o Overlay) Key() string {
	if o.empty() && o.CommonMetadata == nil {
		return ""
	}
	b, _ := json.Marshal(o) // maps are written sorted
	return string(b)
}

// empty says whether the overlay adds nothing kustomize builds (common metadata is
// set after the build).
func (o Overlay) empty() bool {
	return o.NamePrefix == "" && o.NameSuffix == "" && len(o.Patches) == 0 && len(o.Images) == 0 && len(o.Components) == 0
}

// Where the source and the overlay sit in the in-memory filesystem when there is an
// overlay: side by side, because kustomize refuses a resource that contains the
// kustomization listing it.
const (
	sourceRoot  = "/source"
	overlayRoot = "/overlay"
)

// Validate checks the overlay before anything is built: components must be paths
// inside the source (relative to dir), and common metadata must not set the keys the
// agent keeps for itself nor a service account's token keys.
func (o Overlay) Validate(dir string) error {
	base := strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(dir, "./")), "/")
	for _, c := range o.Components {
		if _, err := componentPath(base, c); err != nil {
			return err
		}
	}
	if m := o.CommonMetadata; m != nil {
		for _, kv := range []struct {
			what string
			m    map[string]string
		}{{"label", m.Labels}, {"annotation", m.Annotations}} {
			for k := range kv.m {
				if why := reservedKey(k); why != "" {
					return fmt.Errorf("commonMetadata %s %q is not allowed: %s", kv.what, k, why)
				}
			}
		}
	}
	return nil
}

// componentPath returns a component's path from the source root, refusing any that
// is absolute, remote or climbs out of the source.
func componentPath(base, c string) (string, error) {
	if c == "" || strings.HasPrefix(c, "/") || strings.Contains(c, "://") || strings.HasPrefix(c, "git@") || strings.ContainsRune(c, 0) {
		return "", fmt.Errorf("component %q must be a path relative to spec.path inside the source", c)
	}
	p := path.Clean(path.Join(base, c))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("component %q is outside the source artifact", c)
	}
	return p, nil
}

// reservedKey says why a label or annotation key may not be set by commonMetadata:
// the agent's own keys say which deployment owns an object and how it is applied,
// and the service-account keys would bind a token Secret to another identity.
func reservedKey(k string) string {
	domain, _, ok := strings.Cut(k, "/")
	if !ok {
		return ""
	}
	switch {
	case domain == "flotilla.dev" || strings.HasSuffix(domain, ".flotilla.dev"):
		return "the flotilla.dev domain belongs to the agent (ownership and apply bookkeeping)"
	case strings.HasPrefix(k, "kubernetes.io/service-account."):
		return "it binds a Secret to a service account's identity"
	}
	return ""
}

// writeOverlay writes the overlay kustomization at overlayRoot around dir (a path
// below sourceRoot).
func (o Overlay) writeOverlay(fs filesys.FileSystem, dir string) error {
	rel := func(p string) string { return "../" + strings.TrimPrefix(p, "/") }
	k := types.Kustomization{
		TypeMeta:   types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources:  []string{rel(dir)},
		NamePrefix: o.NamePrefix, NameSuffix: o.NameSuffix,
	}
	base := strings.TrimPrefix(strings.TrimPrefix(dir, sourceRoot), "/")
	for _, c := range o.Components {
		p, err := componentPath(base, c)
		if err != nil {
			return err
		}
		full := path.Join(sourceRoot, p)
		if !fs.IsDir(full) {
			return fmt.Errorf("component %q not found in the source", c)
		}
		k.Components = append(k.Components, rel(full))
	}
	for _, p := range o.Patches {
		kp := types.Patch{Patch: p.Patch}
		if t := p.Target; t != nil {
			kp.Target = &types.Selector{
				ResId: resid.ResId{
					Gvk:  resid.Gvk{Group: t.Group, Version: t.Version, Kind: t.Kind},
					Name: t.Name, Namespace: t.Namespace,
				},
				LabelSelector: t.LabelSelector, AnnotationSelector: t.AnnotationSelector,
			}
		}
		k.Patches = append(k.Patches, kp)
	}
	for _, i := range o.Images {
		img := types.Image{Name: i.Name, NewName: i.NewName, NewTag: i.NewTag, Digest: i.Digest}
		if img.Digest != "" {
			img.NewTag = "" // a digest replaces the tag, as Flux documents
		}
		k.Images = append(k.Images, img)
	}
	out, err := yaml.Marshal(k)
	if err != nil {
		return err
	}
	if err := fs.MkdirAll(overlayRoot); err != nil {
		return err
	}
	return fs.WriteFile(path.Join(overlayRoot, konfig.DefaultKustomizationFileName()), out)
}

// setCommonMetadata sets the labels and annotations on one built object, in sorted
// key order so the output is stable.
func setCommonMetadata(n *kyaml.RNode, m *deliveryv1.CommonMetadata) error {
	if m == nil {
		return nil
	}
	for _, k := range sortedKeys(m.Labels) {
		if err := n.PipeE(kyaml.SetLabel(k, m.Labels[k])); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(m.Annotations) {
		if err := n.PipeE(kyaml.SetAnnotation(k, m.Annotations[k])); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
