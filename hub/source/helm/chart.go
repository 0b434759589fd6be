package helm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"helm.sh/helm/v3/pkg/repo"

	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// MaxChartSize bounds a downloaded chart and what it unpacks to.
const MaxChartSize = 64 << 20

// ErrChartNotFound: the index has no chart of that name, or no version in the range.
var ErrChartNotFound = errors.New("chart not found in the repository index")

// ChartFetcher fetches chart versions of default (HTTP) HelmRepositories into the
// store, for the HelmRelease controller.
type ChartFetcher struct {
	// Reader reads the repository's Secret.
	Reader client.Reader
	// Store holds the repository's index artifact and receives the chart's.
	Store *storage.Store
	// Transport is the HTTP transport to repositories; http.DefaultTransport when nil.
	Transport http.RoundTripper
}

// FetchChart picks the newest version of chart within versionRange (a semver range;
// empty means the newest stable) from the index the HelmRepository last stored,
// downloads it, checks it against the index's digest, and stores it re-packed in
// the hub's artifact format. The artifact's revision is the chart version; its files
// are the chart's, below a folder named after the chart, as in the .tgz.
func (f *ChartFetcher) FetchChart(ctx context.Context, hr *sourcev1.HelmRepository, chart, versionRange string) (*meta.Artifact, error) {
	if hr.Spec.Type == TypeOCI {
		return nil, errors.New("charts of oci HelmRepositories are not fetched yet")
	}
	if hr.Status.Artifact == nil {
		return nil, fmt.Errorf("HelmRepository %s/%s has no index yet", hr.Namespace, hr.Name)
	}
	stored, err := f.Store.Get(hr.Status.Artifact.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading the index of %s/%s: %w", hr.Namespace, hr.Name, err)
	}
	files, err := artifact.Unpack(bytes.NewReader(stored), MaxIndexSize)
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(files[IndexFile])
	if err != nil {
		return nil, err
	}
	cv, err := idx.Get(chart, versionRange)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", ErrChartNotFound, chart, versionRange, err)
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("%w: %s %s has no download URL", ErrChartNotFound, chart, cv.Version)
	}
	chartURL, err := repo.ResolveReferenceURL(hr.Spec.URL, cv.URLs[0])
	if err != nil {
		return nil, err
	}

	var creds credentials
	if ref := hr.Spec.SecretRef; ref != nil {
		secret := &corev1.Secret{}
		if err := f.Reader.Get(ctx, client.ObjectKey{Namespace: hr.Namespace, Name: ref.Name}, secret); err != nil {
			return nil, fmt.Errorf("reading secret %s: %w", ref.Name, err)
		}
		if creds, err = credentialsFrom(secret.Data); err != nil {
			return nil, fmt.Errorf("secret %s: %w", ref.Name, err)
		}
	}
	if !sameHost(hr.Spec.URL, chartURL) {
		// As helm does by default: the repository's password is not sent to another host.
		creds.Username, creds.Password = "", ""
	}
	hc, err := creds.client(f.Transport)
	if err != nil {
		return nil, err
	}
	tgz, err := creds.get(ctx, hc, chartURL, MaxChartSize)
	if err != nil {
		return nil, err
	}
	if cv.Digest != "" {
		if got := fmt.Sprintf("%x", sha256.Sum256(tgz)); got != cv.Digest {
			return nil, fmt.Errorf("chart %s %s: digest %s, the index says %s", chart, cv.Version, got, cv.Digest)
		}
	}
	chartFiles, err := artifact.Unpack(bytes.NewReader(tgz), MaxChartSize)
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", chart, cv.Version, err)
	}
	packed, err := artifact.Pack(chartFiles)
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", chart, cv.Version, err)
	}
	digest, err := f.Store.Put(packed)
	if err != nil {
		return nil, err
	}
	size := int64(len(packed))
	return &meta.Artifact{URL: f.Store.URL(digest), Revision: cv.Version, Digest: digest, Size: &size, LastUpdateTime: metav1.NewTime(time.Now())}, nil
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Host == ub.Host
}
