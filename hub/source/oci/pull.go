package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/flotilla-dev/flotilla/api/artifact"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

// Secret keys read from spec.secretRef.
const (
	keyUsername = "username"
	keyPassword = "password"
	keyCACert   = "ca.crt"
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
	Insecure bool
	Auth     authn.Authenticator
	CA       []byte
	// Base is the transport under the registry client; http.DefaultTransport when nil.
	Base http.RoundTripper
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

// credentials turns the Secret's data into pull options.
func credentials(data map[string][]byte) (pullOptions, error) {
	o := pullOptions{Auth: authn.Anonymous}
	if data == nil {
		return o, nil
	}
	user, hasUser := data[keyUsername]
	pass, hasPass := data[keyPassword]
	ca, hasCA := data[keyCACert]
	switch {
	case hasUser != hasPass:
		return o, errors.New("secret needs both username and password")
	case hasUser:
		o.Auth = authn.FromConfig(authn.AuthConfig{Username: string(user), Password: string(pass)})
	case !hasCA:
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return o, fmt.Errorf("secret has none of username and password, or ca.crt (keys: %s)", strings.Join(keys, ", "))
	}
	if hasCA {
		o.CA = ca
	}
	return o, nil
}

func (o pullOptions) remoteOptions(ctx context.Context) ([]remote.Option, error) {
	base := o.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if len(o.CA) > 0 {
		t, ok := base.(*http.Transport)
		if !ok {
			return nil, errors.New("ca.crt needs an *http.Transport")
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(o.CA) {
			return nil, fmt.Errorf("%s holds no PEM certificate", keyCACert)
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.RootCAs = pool
		base = t
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(o.Auth), remote.WithTransport(base)}, nil
}

// pulled is one OCI artifact's content, already in the hub's format.
type pulled struct {
	Revision string
	Data     []byte
}

// pull resolves ref in repo, downloads the manifest and its first layer, and re-packs
// the layer's files with artifact.Pack so that every hub artifact has one format.
func pull(ctx context.Context, repo name.Repository, ref *sourcev1.OCIRepositoryRef, o pullOptions, maxSize int64) (pulled, error) {
	ropts, err := o.remoteOptions(ctx)
	if err != nil {
		return pulled{}, err
	}
	if ref == nil {
		ref = &sourcev1.OCIRepositoryRef{}
	}
	var r name.Reference
	tag := ""
	switch {
	case ref.Digest != "":
		r = repo.Digest(ref.Digest)
	case ref.SemVer != "":
		c, err := semver.NewConstraint(ref.SemVer)
		if err != nil {
			return pulled{}, fmt.Errorf("%w: invalid semver range %q: %v", errInvalidURL, ref.SemVer, err)
		}
		tags, err := remote.List(repo, ropts...)
		if err != nil {
			return pulled{}, fmt.Errorf("listing tags of %s: %w", repo, err)
		}
		t, ok := newestTag(tags, c)
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

// newestTag returns the highest version in c; of equal versions the name that sorts
// last wins, so the choice is stable.
func newestTag(tags []string, c *semver.Constraints) (string, bool) {
	sorted := append([]string(nil), tags...)
	sort.Strings(sorted)
	var best string
	var bestV *semver.Version
	for _, t := range sorted {
		v, err := semver.NewVersion(t)
		if err != nil || !c.Check(v) {
			continue
		}
		if bestV == nil || !v.LessThan(bestV) {
			best, bestV = t, v
		}
	}
	return best, bestV != nil
}

// isAuthError: the registry refused the credentials.
func isAuthError(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden
	}
	return false
}
