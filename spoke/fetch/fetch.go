package fetch

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"

	"github.com/go-logr/logr"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout      = time.Minute
	DefaultRetryMax     = 4
	DefaultRetryWaitMin = 500 * time.Millisecond
	DefaultRetryWaitMax = 10 * time.Second
	DefaultMaxSize      = 64 << 20
	DefaultMaxCached    = 32
)

// Options configures a Fetcher.
type Options struct {
	// Cluster is the name of the cluster the agent serves: an Assignment's signed
	// statement must name it.
	Cluster string
	// ArtifactURL is the hub artifact server's base URL the agent registered with.
	// When set, an Assignment whose artifact URL lies elsewhere is refused before any
	// request is made, so the agent's credential goes nowhere else.
	ArtifactURL string
	// Dir holds the cache of verified artifacts; nothing is cached when empty.
	Dir string
	// TrustedKeys verify artifact signatures.
	TrustedKeys []ed25519.PublicKey
	// Keys, when set, is asked for the trusted keys at every fetch instead of
	// TrustedKeys, so that keys rotated while the agent runs (spoke/trust) count.
	Keys func() []ed25519.PublicKey
	// Timeout bounds one download attempt, body included.
	Timeout time.Duration
	// RetryMax is how many times a failed download is retried; negative means never.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between attempts.
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxSize bounds the size of the downloaded tar.gz.
	MaxSize int64
	// MaxUnpackedSize bounds the size of the unpacked files; artifact.DefaultMaxSize when zero.
	MaxUnpackedSize int64
	// MaxCached is how many artifacts the cache keeps, the most recently used first.
	MaxCached int
	// Transport, when set, replaces the default HTTP transport (for a private CA, a proxy).
	Transport http.RoundTripper
	// Logger receives retry notices.
	Logger logr.Logger
}

// Fetcher downloads, verifies and unpacks artifacts. It is safe for concurrent use.
type Fetcher struct {
	opts Options
	http *retryablehttp.Client
}

// VerificationError says that an artifact's digest or signature did not verify, so
// nothing from it may be applied. The agent reports it as VerificationFailed.
type VerificationError struct {
	Digest string
	Err    error
}

func (e *VerificationError) Error() string {
	return fmt.Sprintf("artifact %s: %v", e.Digest, e.Err)
}

func (e *VerificationError) Unwrap() error { return e.Err }

// IsVerificationError reports whether err is, or wraps, a VerificationError.
func IsVerificationError(err error) bool {
	var v *VerificationError
	return errors.As(err, &v)
}

// Verify checks, without any request, that asg is what the hub signed for this
// cluster and place, with a well-formed digest and an artifact URL on the registered
// artifact server. Its errors are *VerificationError.
func (f *Fetcher) Verify(asg *fleetv1.Assignment) error {
	a := asg.Spec.Artifact
	if !meta.ValidDigest(a.Digest) {
		return &VerificationError{Digest: a.Digest, Err: errors.New("digest is not sha256:<64 hex>")}
	}
	if err := artifact.VerifyStatement(f.opts.Cluster, asg, f.trusted()); err != nil {
		return &VerificationError{Digest: a.Digest, Err: err}
	}
	if err := AllowedURL(f.opts.ArtifactURL, a.URL); err != nil {
		return &VerificationError{Digest: a.Digest, Err: err}
	}
	return nil
}

// AllowedURL checks that url lies below base, the hub artifact server the agent
// registered with, over HTTPS unless base itself is plain HTTP (a test server with no
// credential). An empty base allows any URL.
func AllowedURL(base, url string) error {
	if base == "" {
		return nil
	}
	b, err := neturl.Parse(base)
	if err != nil {
		return fmt.Errorf("the registered artifact URL %q: %w", base, err)
	}
	u, err := neturl.Parse(url)
	if err != nil || u.Scheme != b.Scheme || u.Host != b.Host || u.User != nil ||
		!strings.HasPrefix(u.Path, strings.TrimSuffix(b.Path, "/")+"/") {
		return fmt.Errorf("artifact URL %q is not on the hub artifact server %s the agent registered with; nothing is sent there", url, base)
	}
	return nil
}

// New returns a Fetcher, creating the cache folder when one is set.
func New(opts Options) (*Fetcher, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = DefaultRetryMax
	} else if opts.RetryMax < 0 {
		opts.RetryMax = 0
	}
	if opts.RetryWaitMin <= 0 {
		opts.RetryWaitMin = DefaultRetryWaitMin
	}
	if opts.RetryWaitMax <= 0 {
		opts.RetryWaitMax = DefaultRetryWaitMax
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxUnpackedSize <= 0 {
		opts.MaxUnpackedSize = artifact.DefaultMaxSize
	}
	if opts.MaxCached <= 0 {
		opts.MaxCached = DefaultMaxCached
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("artifact cache: %w", err)
		}
	}

	c := retryablehttp.NewClient()
	c.HTTPClient.Timeout = opts.Timeout
	if opts.Transport != nil {
		c.HTTPClient.Transport = opts.Transport
	}
	c.RetryMax = opts.RetryMax
	c.RetryWaitMin = opts.RetryWaitMin
	c.RetryWaitMax = opts.RetryWaitMax
	c.Logger = leveledLogger{opts.Logger}
	// Hand back the last response when retries run out, so the error can name its status.
	c.ErrorHandler = func(resp *http.Response, err error, attempts int) (*http.Response, error) {
		if err == nil && resp != nil {
			return resp, nil
		}
		if resp != nil {
			resp.Body.Close()
		}
		return nil, fmt.Errorf("giving up after %d attempt(s): %w", attempts, err)
	}
	return &Fetcher{opts: opts, http: c}, nil
}

// Fetch returns the files of an Assignment's artifact. The hub's signature over the
// whole apply statement (this cluster, the Assignment's namespace and name, its
// spec) and the artifact URL are checked before anything is downloaded, and the
// digest of the bytes before anything is unpacked; any of these failing is a
// *VerificationError. Other errors are about reaching the artifact and are worth
// retrying.
func (f *Fetcher) Fetch(ctx context.Context, asg *fleetv1.Assignment) (map[string][]byte, error) {
	a := asg.Spec.Artifact
	if err := f.Verify(asg); err != nil {
		return nil, err
	}

	if data := f.cached(a.Digest); data != nil {
		if files, err := artifact.Unpack(bytes.NewReader(data), f.opts.MaxUnpackedSize); err == nil {
			return files, nil
		}
		// The same bytes unpacked once; fall through and download them again.
	}

	data, err := f.download(ctx, a.URL)
	if err != nil {
		return nil, err
	}
	if got := artifact.Digest(data); got != a.Digest {
		return nil, &VerificationError{Digest: a.Digest, Err: fmt.Errorf("digest mismatch: downloaded %s", got)}
	}
	files, err := artifact.Unpack(bytes.NewReader(data), f.opts.MaxUnpackedSize)
	if err != nil {
		return nil, fmt.Errorf("unpacking artifact %s: %w", a.Digest, err)
	}
	if err := f.store(a.Digest, data); err != nil {
		f.opts.Logger.Error(err, "caching artifact", "digest", a.Digest)
	}
	return files, nil
}

// trusted returns the keys trusted now; one reading serves one fetch.
func (f *Fetcher) trusted() []ed25519.PublicKey {
	if f.opts.Keys != nil {
		return f.opts.Keys()
	}
	return f.opts.TrustedKeys
}

func (f *Fetcher) download(ctx context.Context, url string) ([]byte, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("artifact URL %q: %w", url, err)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading artifact: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("downloading artifact from %s: %s", url, resp.Status)
	}
	if resp.ContentLength > f.opts.MaxSize {
		return nil, fmt.Errorf("artifact at %s is %d bytes, more than the limit of %d", url, resp.ContentLength, f.opts.MaxSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.opts.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("downloading artifact from %s: %w", url, err)
	}
	if int64(len(data)) > f.opts.MaxSize {
		return nil, fmt.Errorf("artifact at %s is more than the limit of %d bytes", url, f.opts.MaxSize)
	}
	return data, nil
}

func (f *Fetcher) path(digest string) string {
	return filepath.Join(f.opts.Dir, strings.TrimPrefix(digest, "sha256:")+".tar.gz")
}

// cached returns the cached bytes of digest, or nil. A file whose bytes no longer
// match its digest is removed, so a damaged disk costs one download, not a failure.
func (f *Fetcher) cached(digest string) []byte {
	if f.opts.Dir == "" {
		return nil
	}
	p := f.path(digest)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	if artifact.Digest(data) != digest {
		_ = os.Remove(p)
		return nil
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // marks it recently used for eviction
	return data
}

// store writes verified bytes through a temporary file, so a reader never sees half
// an artifact, then evicts the least recently used beyond MaxCached.
func (f *Fetcher) store(digest string, data []byte) error {
	if f.opts.Dir == "" {
		return nil
	}
	tmp, err := os.CreateTemp(f.opts.Dir, ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path(digest)); err != nil {
		return err
	}
	return f.evict()
}

func (f *Fetcher) evict() error {
	matches, err := filepath.Glob(filepath.Join(f.opts.Dir, "*.tar.gz"))
	if err != nil || len(matches) <= f.opts.MaxCached {
		return err
	}
	type entry struct {
		path string
		mod  time.Time
	}
	entries := make([]entry, 0, len(matches))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil {
			entries = append(entries, entry{m, fi.ModTime()})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].mod.After(entries[j].mod) })
	for _, e := range entries[min(f.opts.MaxCached, len(entries)):] {
		if err := os.Remove(e.path); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// leveledLogger routes retryablehttp's messages to logr: every request at debug
// level, retries and failures at info level since they are retried, not fatal.
type leveledLogger struct{ log logr.Logger }

func (l leveledLogger) Error(msg string, kv ...interface{}) { l.log.Info(msg, kv...) }
func (l leveledLogger) Warn(msg string, kv ...interface{})  { l.log.Info(msg, kv...) }
func (l leveledLogger) Info(msg string, kv ...interface{})  { l.log.V(1).Info(msg, kv...) }
func (l leveledLogger) Debug(msg string, kv ...interface{}) { l.log.V(1).Info(msg, kv...) }
