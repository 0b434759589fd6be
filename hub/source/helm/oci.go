package helm

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/versions"
)

// ChartLayerMediaType is the media type of the layer holding a chart's .tgz, as
// `helm push` writes it.
const ChartLayerMediaType types.MediaType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

// ociRepository parses an oci HelmRepository's URL (oci://host/path).
func ociRepository(raw string) (name.Repository, error) {
	rest, ok := strings.CutPrefix(raw, "oci://")
	if !ok {
		return name.Repository{}, fmt.Errorf("%w %q: type oci needs an oci:// URL", errInvalidURL, raw)
	}
	repo, err := name.NewRepository(strings.TrimSuffix(rest, "/"), name.StrictValidation)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%w %q: %v", errInvalidURL, raw, err)
	}
	return repo, nil
}

// ociAuth is the registry authenticator and transport the repository's Secret gives.
func (f *ChartFetcher) ociAuth(ctx context.Context, hr *sourcev1.HelmRepository) ([]remote.Option, error) {
	repo, err := ociRepository(hr.Spec.URL)
	if err != nil {
		return nil, err
	}
	// A .dockerconfigjson Secret gives only its entry for this registry.
	creds, err := credentials.Load(ctx, f.Reader, hr.Namespace, hr.Spec.SecretRef, credentials.Options{Scheme: "oci", Registry: repo.RegistryStr()})
	if err != nil {
		return nil, err
	}
	rt, err := creds.Transport(f.transport())
	if err != nil {
		return nil, err
	}
	auth := authn.Anonymous
	if creds.HasBasic() {
		auth = authn.FromConfig(authn.AuthConfig{Username: creds.Username, Password: creds.Password})
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth), remote.WithTransport(rt)}, nil
}

// fetchOCIChart pulls <url>/<chart>:<version> and returns the chart's .tgz and its
// version. A range (anything that is not an existing tag) is resolved against the
// repository's tags; Helm writes a version's "+" as "_" in a tag, since tags may not
// hold "+".
func (f *ChartFetcher) fetchOCIChart(ctx context.Context, hr *sourcev1.HelmRepository, chart, versionRange string) ([]byte, string, error) {
	base, err := ociRepository(hr.Spec.URL)
	if err != nil {
		return nil, "", err
	}
	repo, err := name.NewRepository(base.String()+"/"+chart, name.StrictValidation)
	if err != nil {
		return nil, "", fmt.Errorf("%w: chart %q in %s: %v", errInvalidURL, chart, hr.Spec.URL, err)
	}
	opts, err := f.ociAuth(ctx, hr)
	if err != nil {
		return nil, "", err
	}
	tags, err := remote.List(repo, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("listing the tags of %s: %w", repo, err)
	}
	version, err := pickTag(tags, versionRange)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s %s", err, repo, versionRange)
	}
	ref := repo.Tag(strings.ReplaceAll(version, "+", "_"))
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("pulling %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, "", fmt.Errorf("reading the layers of %s: %w", ref, err)
	}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, "", fmt.Errorf("reading the layers of %s: %w", ref, err)
		}
		if mt != ChartLayerMediaType {
			continue // provenance and other layers are not the chart
		}
		if size, err := l.Size(); err == nil && size > MaxChartSize {
			return nil, "", fmt.Errorf("chart %s is %d bytes, more than %d", ref, size, MaxChartSize)
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, "", fmt.Errorf("downloading %s: %w", ref, err)
		}
		defer rc.Close()
		tgz, err := io.ReadAll(io.LimitReader(rc, MaxChartSize+1))
		if err != nil {
			return nil, "", fmt.Errorf("downloading %s: %w", ref, err)
		}
		if len(tgz) > MaxChartSize {
			return nil, "", fmt.Errorf("chart %s is more than %d bytes", ref, MaxChartSize)
		}
		return tgz, version, nil
	}
	return nil, "", fmt.Errorf("%s has no layer of media type %s: not a Helm chart", ref, ChartLayerMediaType)
}

// pickTag returns the chart version a tag list offers for versionRange: the range
// itself when it names a tag (as pickVersion takes a version by name), else the
// newest version in the range (the newest stable one for an empty range), by the
// rule every source kind uses. Tags are read with "_" as "+".
func pickTag(tags []string, versionRange string) (string, error) {
	candidates := make([]string, 0, len(tags))
	for _, t := range tags {
		v := strings.ReplaceAll(t, "_", "+")
		if versionRange != "" && v == versionRange {
			return v, nil
		}
		candidates = append(candidates, v)
	}
	rng := versionRange
	if rng == "" {
		rng = "*"
	}
	c, err := versions.Range(rng)
	if err != nil {
		return "", err
	}
	v, ok := versions.Newest(candidates, c)
	if !ok {
		return "", fmt.Errorf("%w (%d tags)", ErrChartNotFound, len(tags))
	}
	return v, nil
}
