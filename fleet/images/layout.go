package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// refNameAnnotation names an index in an OCI layout's index.json, as `oras` and
// `skopeo` read it.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// WriteLayout writes idx as the only entry of a fresh OCI layout at dir (one folder
// per image), tagged tag.
func WriteLayout(dir, tag string, idx v1.ImageIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: tag}))
}

// ReadLayout reads back the index WriteLayout wrote, and its tag.
func ReadLayout(dir string) (v1.ImageIndex, string, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, "", err
	}
	outer, err := p.ImageIndex()
	if err != nil {
		return nil, "", err
	}
	m, err := outer.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	if len(m.Manifests) != 1 {
		return nil, "", fmt.Errorf("%s: want one index, found %d entries", dir, len(m.Manifests))
	}
	idx, err := outer.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return nil, "", err
	}
	return idx, m.Manifests[0].Annotations[refNameAnnotation], nil
}

// LayoutDir is the layout folder of img below dir.
func LayoutDir(dir string, img Image) string { return filepath.Join(dir, img.Name) }

// Push writes idx as ref (e.g. registry.example.com/flotilla/flotilla-hub:v0.3.0), with
// the credentials of the Docker config (~/.docker/config.json and its helpers).
// It returns the index's digest.
func Push(ctx context.Context, ref string, idx v1.ImageIndex, opts ...name.Option) (v1.Hash, error) {
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", r, err)
	}
	return idx.Digest()
}

// Tag is the image tag of a version: the version itself, with anything a tag may
// not hold (e.g. the + of semver build metadata) replaced by _.
func Tag(version string) string {
	b := []byte(version)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}
