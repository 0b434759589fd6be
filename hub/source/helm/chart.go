package helm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"helm.sh/helm/v3/pkg/repo"

	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/reconcile"
	"github.com/flotilla-dev/flotilla/hub/source/versions"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// MaxChartSize bounds a downloaded chart and what it unpacks to.
const MaxChartSize = 64 << 20

// ErrChartNotFound: the index has no chart of that name, or no version in the range.
var ErrChartNotFound = errors.New("chart not found in the repository index")

// ChartFetcher fetches chart versions of HelmRepositories (default and oci) into
// the store, for the HelmRelease controller.
type ChartFetcher struct {
	// Reader reads the repository's Secret.
	Reader client.Reader
	// Store holds the repository's index artifact and receives the chart's.
	Store storage.Artifacts
	// Transport is the HTTP transport to repositories: egress.Transport over
	// http.DefaultTransport when nil, over it when it is an *http.Transport.
	Transport http.RoundTripper
	// Egress holds a tenant's repositories to what tenants may reach
	// (tenancy/egress); the default rules when nil.
	Egress *egress.Policy
}

// transport is Transport dialing through the egress hook.
func (f *ChartFetcher) transport() http.RoundTripper { return egress.Wrap(f.Transport) }

// FetchChart picks the newest version of chart within versionRange (a semver range;
// empty means the newest stable) from the index the HelmRepository last stored, or
// from the tags of <url>/<chart> for an oci one, downloads it (checked against the
// index's digest where there is one), and stores it re-packed in the hub's artifact
// format. The artifact's revision is the chart version; its files
// are the chart's, below a folder named after the chart, as in the .tgz.
//
// A tenant's repository (and any chart URL its index names) is dialed under the
// egress policy; a refusal is an error with an *egress.Refusal in its chain.
func (f *ChartFetcher) FetchChart(ctx context.Context, hr *sourcev1.HelmRepository, chart, versionRange string) (*meta.Artifact, error) {
	var tgz []byte
	var version string
	ctx, err := reconcile.EgressContext(ctx, f.Reader, hr.Namespace, f.Egress)
	if err != nil {
		return nil, err
	}
	if hr.Spec.Type == TypeOCI {
		tgz, version, err = f.fetchOCIChart(ctx, hr, chart, versionRange)
	} else {
		tgz, version, err = f.fetchIndexedChart(ctx, hr, chart, versionRange)
	}
	if err != nil {
		var ref *egress.Refusal
		if r := egress.Refused(ctx); r != nil && !errors.As(err, &ref) {
			err = fmt.Errorf("%w (%v)", r, err)
		}
		return nil, err
	}
	chartFiles, err := artifact.Unpack(bytes.NewReader(tgz), MaxChartSize)
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", chart, version, err)
	}
	packed, err := artifact.Pack(chartFiles)
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", chart, version, err)
	}
	digest, err := f.Store.Put(packed)
	if err != nil {
		return nil, err
	}
	size := int64(len(packed))
	return &meta.Artifact{URL: f.Store.URL(digest), Revision: version, Digest: digest, Size: &size, LastUpdateTime: metav1.NewTime(time.Now())}, nil
}

// fetchIndexedChart downloads a chart version of a default repository, picked from
// the index the HelmRepository last stored, and checks it against the index's digest.
func (f *ChartFetcher) fetchIndexedChart(ctx context.Context, hr *sourcev1.HelmRepository, chart, versionRange string) ([]byte, string, error) {
	if hr.Status.Artifact == nil {
		return nil, "", fmt.Errorf("HelmRepository %s/%s has no index yet", hr.Namespace, hr.Name)
	}
	stored, err := f.Store.Get(hr.Status.Artifact.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("reading the index of %s/%s: %w", hr.Namespace, hr.Name, err)
	}
	files, err := artifact.Unpack(bytes.NewReader(stored), MaxIndexSize)
	if err != nil {
		return nil, "", err
	}
	idx, err := parseIndex(files[IndexFile])
	if err != nil {
		return nil, "", err
	}
	cv, err := pickVersion(idx, chart, versionRange)
	if err != nil {
		return nil, "", err
	}
	if len(cv.URLs) == 0 {
		return nil, "", fmt.Errorf("%w: %s %s has no download URL", ErrChartNotFound, chart, cv.Version)
	}
	chartURL, err := repo.ResolveReferenceURL(hr.Spec.URL, cv.URLs[0])
	if err != nil {
		return nil, "", err
	}

	creds, err := credentials.Load(ctx, f.Reader, hr.Namespace, hr.Spec.SecretRef, credentials.Options{Scheme: schemeOf(hr.Spec.URL)})
	if err != nil {
		return nil, "", err
	}
	if !sameHost(hr.Spec.URL, chartURL) {
		// As helm does by default: the repository's password is not sent to another host.
		creds.Username, creds.Password = "", ""
	}
	tgz, err := get(ctx, creds, f.transport(), chartURL, MaxChartSize)
	if err != nil {
		return nil, "", err
	}
	if cv.Digest != "" {
		if got := fmt.Sprintf("%x", sha256.Sum256(tgz)); got != cv.Digest {
			return nil, "", fmt.Errorf("chart %s %s: digest %s, the index says %s", chart, cv.Version, got, cv.Digest)
		}
	}
	return tgz, cv.Version, nil
}

// pickVersion returns the chart version that equals versionRange, else the newest in
// it (the newest stable one for an empty range), by the rule every source kind uses.
func pickVersion(idx *repo.IndexFile, chart, versionRange string) (*repo.ChartVersion, error) {
	rng := versionRange
	if rng == "" {
		rng = "*"
	}
	c, err := versions.Range(rng)
	if err != nil {
		return nil, err
	}
	byVersion := map[string]*repo.ChartVersion{}
	for _, cv := range idx.Entries[chart] {
		if cv.Version == versionRange {
			return cv, nil // a version that is not semver may still be asked for by name
		}
		byVersion[cv.Version] = cv
	}
	v, ok := versions.Newest(slices.Collect(maps.Keys(byVersion)), c)
	if !ok {
		return nil, fmt.Errorf("%w: %s %s (%d versions)", ErrChartNotFound, chart, versionRange, len(byVersion))
	}
	return byVersion[v], nil
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Host == ub.Host
}
