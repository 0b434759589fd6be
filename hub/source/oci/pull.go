package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
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
)

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
func pull(ctx context.Context, repo name.Repository, ref *sourcev1.OCIRepositoryRef, o pullOptions, maxSize int64) (pulled, error) {
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
	layers, err := img.Layers()
	if err != nil {
		return pulled{}, fmt.Errorf("reading the layers of %s: %w", r, err)
	}
	if len(layers) == 0 {
		return pulled{}, fmt.Errorf("%w: %s has no layers", errBadLayer, r)
	}
	// The first layer carries the content, as `flux push artifact` and similar tools
	// make it; other layers (signatures, attestations) are not part of it.
	rc, err := layers[0].Compressed()
	if err != nil {
		return pulled{}, fmt.Errorf("downloading the layer of %s: %w", r, err)
	}
	defer rc.Close()
	files, err := artifact.Unpack(rc, maxSize)
	if err != nil {
		if ctx.Err() != nil {
			return pulled{}, ctx.Err()
		}
		return pulled{}, fmt.Errorf("%w: %v", errBadLayer, err)
	}
	data, err := artifact.Pack(files)
	if err != nil {
		return pulled{}, fmt.Errorf("%w: %v", errBadLayer, err)
	}
	revision := digest.String()
	if tag != "" {
		revision = tag + "@" + revision
	}
	return pulled{Revision: revision, Data: data}, nil
}
