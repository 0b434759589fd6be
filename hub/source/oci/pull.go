package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/flotilla-dev/flotilla/api/artifact"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/versions"
)

// DefaultTag is pulled when spec.ref names nothing, as docker pull does.
const DefaultTag = "latest"

var (
	errInvalidURL    = errors.New("invalid URL")
	errNoMatchingTag = errors.New("no tag matches the semver range")
	errBadLayer      = errors.New("the artifact's layer is not a tar.gz of plain files")
	errNoLayer       = errors.New("no layer has the media type of spec.layerSelector")
)

// CopiedLayerFile names the one file of an artifact made with layerSelector.operation
// copy when the layer has no org.opencontainers.image.title annotation.
const CopiedLayerFile = "layer.tgz"

// pullOptions is what a pull needs besides the reference.
type pullOptions struct {
	Auth authn.Authenticator
	// Transport to the registry, trusting the Secret's ca.crt.
	Transport http.RoundTripper
}

// pullOptionsFor turns the Secret's credentials into pull options over base
// (http.DefaultTransport when nil).
func pullOptionsFor(c credentials.Credentials, base http.RoundTripper) (pullOptions, error) {
	o := pullOptions{Auth: authn.Anonymous}
	if c.HasBasic() {
		o.Auth = authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password})
	}
	var err error
	o.Transport, err = c.Transport(base)
	return o, err
}

// repository parses spec.url (oci://host/path).
func repository(raw string, insecure bool) (name.Repository, error) {
	rest, ok := strings.CutPrefix(raw, "oci://")
	if !ok || rest == "" {
		return name.Repository{}, fmt.Errorf("%w %q: use oci://<registry>/<repository>", errInvalidURL, raw)
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	// StrictValidation: no silent docker.io/library/ defaults for a hub's sources.
	repo, err := name.NewRepository(strings.TrimSuffix(rest, "/"), append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%w %q: %v", errInvalidURL, raw, err)
	}
	return repo, nil
}

func (o pullOptions) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(o.Auth), remote.WithTransport(o.Transport)}
}

// pulled is one OCI artifact's content, already in the hub's format.
type pulled struct {
	Revision string
	Data     []byte
}

// pull resolves ref in repo, downloads the manifest and its first layer, and re-packs
// the layer's files with artifact.Pack so that every hub artifact has one format.
func pull(ctx context.Context, repo name.Repository, ref *sourcev1.OCIRepositoryRef, sel *sourcev1.OCILayerSelector, o pullOptions, maxSize int64) (pulled, error) {
	ropts := o.remoteOptions(ctx)
	if ref == nil {
		ref = &sourcev1.OCIRepositoryRef{}
	}
	var r name.Reference
	tag := ""
	switch {
	case ref.Digest != "":
		r = repo.Digest(ref.Digest)
	case ref.SemVer != "":
		c, err := versions.Range(ref.SemVer)
		if err != nil {
			return pulled{}, err
		}
		tags, err := remote.List(repo, ropts...)
		if err != nil {
			return pulled{}, fmt.Errorf("listing tags of %s: %w", repo, err)
		}
		t, ok := versions.Newest(tags, c)
		if !ok {
			return pulled{}, fmt.Errorf("%w %q (%d tags)", errNoMatchingTag, ref.SemVer, len(tags))
		}
		tag = t
		r = repo.Tag(t)
	default:
		tag = ref.Tag
		if tag == "" {
			tag = DefaultTag
		}
		r = repo.Tag(tag)
	}

	img, err := remote.Image(r, ropts...)
	if err != nil {
		return pulled{}, fmt.Errorf("pulling %s: %w", r, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return pulled{}, fmt.Errorf("pulling %s: %w", r, err)
	}
	if ref.Digest != "" && digest.String() != ref.Digest {
		// The registry must serve what was asked for; go-containerregistry checks it
		// too, this says so in the user's terms.
		return pulled{}, fmt.Errorf("registry returned manifest %s for %s", digest, ref.Digest)
	}
	data, err := content(ctx, img, r, sel, maxSize)
	if err != nil {
		return pulled{}, err
	}
	revision := digest.String()
	if tag != "" {
		revision = tag + "@" + revision
	}
	return pulled{Revision: revision, Data: data}, nil
}

// content selects the layer that holds the artifact (the first one, or the first with
// sel's media type) and turns it into the hub's format: its files re-packed with
// artifact.Pack (extract), or the layer's bytes as one file (copy).
func content(ctx context.Context, img v1.Image, r name.Reference, sel *sourcev1.OCILayerSelector, maxSize int64) ([]byte, error) {
	if sel == nil {
		sel = &sourcev1.OCILayerSelector{}
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of %s: %w", r, err)
	}
	if len(m.Layers) == 0 {
		return nil, fmt.Errorf("%w: %s has no layers", errBadLayer, r)
	}
	// Without a selector the first layer carries the content, as `flux push artifact`
	// and similar tools make it; other layers (signatures, attestations) are not part of it.
	desc := m.Layers[0]
	if sel.MediaType != "" {
		found := false
		var types []string
		for _, l := range m.Layers {
			types = append(types, string(l.MediaType))
			if string(l.MediaType) == sel.MediaType {
				desc, found = l, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %s has none of media type %s (layers: %s)", errNoLayer, r, sel.MediaType, strings.Join(types, ", "))
		}
	}
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading layer %s of %s: %w", desc.Digest, r, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, fmt.Errorf("downloading layer %s of %s: %w", desc.Digest, r, err)
	}
	defer rc.Close()

	if sel.Operation == sourcev1.OCILayerCopy {
		if desc.Size > maxSize {
			return nil, fmt.Errorf("%w: layer %s is %d bytes, more than %d", errBadLayer, desc.Digest, desc.Size, maxSize)
		}
		raw, err := io.ReadAll(io.LimitReader(rc, maxSize+1))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("downloading layer %s of %s: %w", desc.Digest, r, err)
		}
		if int64(len(raw)) > maxSize {
			return nil, fmt.Errorf("%w: layer %s is more than %d bytes", errBadLayer, desc.Digest, maxSize)
		}
		data, err := artifact.Pack(map[string][]byte{copiedName(desc): raw})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadLayer, err)
		}
		return data, nil
	}

	files, err := artifact.Unpack(rc, maxSize)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", errBadLayer, err)
	}
	data, err := artifact.Pack(files)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadLayer, err)
	}
	return data, nil
}

// copiedName is the file name of a copied layer: the base name of its title
// annotation (what `oras push` and `helm push` write), CopiedLayerFile without one.
func copiedName(desc v1.Descriptor) string {
	title := path.Base(strings.TrimSpace(desc.Annotations[titleAnnotation]))
	if title == "" || title == "." || title == "/" || title == ".." {
		return CopiedLayerFile
	}
	return title
}

// titleAnnotation is the OCI annotation that names a layer's file.
const titleAnnotation = "org.opencontainers.image.title"
