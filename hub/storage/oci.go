package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

// What the hub writes to a registry: for every artifact a manifest tagged
// sha256-<hex> whose one layer is the artifact's tar.gz. The layer's blob digest is
// the artifact's digest, so the blob is the artifact, byte for byte.
const (
	// OCIScheme starts an --artifact-store address: oci://host[:port]/repository.
	OCIScheme = "oci://"
	// ArtifactType is the artifactType of the hub's manifests.
	ArtifactType = "application/vnd.flotilla.artifact.v1"
	// LayerMediaType is the media type of an artifact's layer.
	LayerMediaType types.MediaType = "application/vnd.flotilla.artifact.layer.v1.tar+gzip"
	// HistoryTag holds the collector's history (History) as a one-layer manifest, so
	// that every replica that becomes leader sees the same.
	HistoryTag = "flotilla-history"

	historyMediaType types.MediaType = "application/vnd.flotilla.history.v1+json"
	emptyMediaType   types.MediaType = "application/vnd.oci.empty.v1+json"
	// storedAt is when the artifact was last put: the collector's grace period
	// counts from it, as it counts from a file's time in the file store.
	storedAt = "org.opencontainers.image.created"
)

// DefaultOCICacheBytes is how many bytes of artifacts an OCIStore keeps in memory to
// serve agents without asking the registry again.
const DefaultOCICacheBytes = 64 << 20

// ErrDigestMismatch is returned when the registry sends bytes that do not hash to the
// digest asked for; they are never served.
var ErrDigestMismatch = errors.New("registry sent bytes that do not match the artifact digest")

// ErrDeleteRefused is returned by Delete when the registry does not allow deleting
// manifests; its own retention policy must then clean up.
var ErrDeleteRefused = errors.New("the registry refuses to delete")

// TagOf is the tag of an artifact's manifest: sha256-<hex> (a tag cannot hold ':').
func TagOf(digest string) string { return "sha256-" + strings.TrimPrefix(digest, "sha256:") }

// OCIOptions configures an OCIStore.
type OCIOptions struct {
	// Keychain finds the registry's credentials; authn.DefaultKeychain (the docker
	// config file) when nil.
	Keychain authn.Keychain
	// Transport to the registry; remote.DefaultTransport when nil.
	Transport http.RoundTripper
	// Insecure allows plain HTTP (localhost and 127.0.0.1 always may).
	Insecure bool
	// CacheBytes bounds the artifacts kept in memory; DefaultOCICacheBytes when
	// zero, none when negative.
	CacheBytes int64
	// Timeout of one store operation; 2 minutes when zero.
	Timeout time.Duration
	// Refresh: Put writes an artifact's manifest again, with a new time, when the
	// stored one is older than this; a minute when zero.
	Refresh time.Duration
}

// OCIStore keeps artifacts in one repository of an OCI registry. The hub's artifact
// server still authorises every download and serves it from here (read-through, with
// a small cache), so agents never talk to the registry.
type OCIStore struct {
	repo name.Repository
	opts OCIOptions

	mu      sync.RWMutex
	baseURL string

	configPushed atomic.Bool
	locks        [16]sync.Mutex // striped by digest: a Put and a Delete of one never interleave
	known        expiring       // digests Has saw lately
	cache        *blobCache
	flight       flight

	historyMu   sync.Mutex
	lastHistory []byte
}

// IsOCI reports whether an --artifact-store address names a registry.
func IsOCI(store string) bool { return strings.HasPrefix(store, OCIScheme) }

// NewOCI opens the store at oci://host/repository whose artifacts are served at
// baseURL. It does not contact the registry.
func NewOCI(address, baseURL string, o OCIOptions) (*OCIStore, error) {
	ref, ok := strings.CutPrefix(address, OCIScheme)
	if !ok {
		return nil, fmt.Errorf("storage: %q is not an %s address", address, OCIScheme)
	}
	var nameOpts []name.Option
	if o.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	repo, err := name.NewRepository(strings.TrimRight(ref, "/"), nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Transport == nil {
		o.Transport = remote.DefaultTransport
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Refresh <= 0 {
		o.Refresh = time.Minute
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultOCICacheBytes
	}
	s := &OCIStore{repo: repo, opts: o, cache: newBlobCache(o.CacheBytes)}
	s.SetBaseURL(baseURL)
	return s, nil
}

// Repository is the registry repository, host/path.
func (s *OCIStore) Repository() string { return s.repo.Name() }

// SetBaseURL changes the address artifacts are served at.
func (s *OCIStore) SetBaseURL(u string) {
	s.mu.Lock()
	s.baseURL = strings.TrimRight(u, "/")
	s.mu.Unlock()
}

// URL is where the hub's artifact server serves the artifact, as for the file store.
func (s *OCIStore) URL(digest string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return artifactURL(s.baseURL, digest)
}

func (s *OCIStore) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.Timeout)
}

func (s *OCIStore) remote(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(s.opts.Keychain), remote.WithTransport(s.opts.Transport)}
}

func (s *OCIStore) lock(digest string) *sync.Mutex {
	h := strings.TrimPrefix(digest, "sha256:")
	if h == "" {
		return &s.locks[0]
	}
	return &s.locks[int(h[len(h)-1])%len(s.locks)]
}

// Put pushes the artifact's blob (when the registry lacks it) and its manifest, and
// returns its digest. A manifest put less than Refresh ago is left as it is.
func (s *OCIStore) Put(data []byte) (string, error) {
	digest := artifact.Digest(data)
	l := s.lock(digest)
	l.Lock()
	defer l.Unlock()
	ctx, cancel := s.op()
	defer cancel()
	tag := s.repo.Tag(TagOf(digest))
	var prev v1.Hash
	if m, d, err := s.manifest(ctx, tag); err == nil && len(m.Layers) == 1 && m.Layers[0].Digest.String() == digest {
		if at, err := time.Parse(time.RFC3339, m.Annotations[storedAt]); err == nil && time.Since(at) < s.opts.Refresh {
			s.known.add(digest)
			return digest, nil
		}
		prev = d
	}
	if _, err := s.push(ctx, tag, data, LayerMediaType, prev); err != nil {
		return "", fmt.Errorf("storage: pushing %s to %s: %w", digest, s.repo, err)
	}
	s.known.add(digest)
	return digest, nil
}

// push writes layer and a manifest of it tagged tag, and deletes the manifest prev
// the tag named before (best effort: an untagged manifest only takes room).
func (s *OCIStore) push(ctx context.Context, tag name.Tag, layer []byte, mediaType types.MediaType, prev v1.Hash) (v1.Hash, error) {
	opts := s.remote(ctx)
	if !s.configPushed.Load() {
		if err := remote.WriteLayer(s.repo, static.NewLayer([]byte("{}"), emptyMediaType), opts...); err != nil {
			return v1.Hash{}, err
		}
		s.configPushed.Store(true)
	}
	if err := remote.WriteLayer(s.repo, static.NewLayer(layer, mediaType), opts...); err != nil {
		return v1.Hash{}, err
	}
	sum := sha256.Sum256(layer)
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: emptyMediaType, Size: 2, Digest: emptyDigest},
		Layers: []v1.Descriptor{{MediaType: mediaType, Size: int64(len(layer)),
			Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}},
		Annotations: map[string]string{storedAt: time.Now().UTC().Format(time.RFC3339)},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Put(tag, rawManifest(raw), opts...); err != nil {
		return v1.Hash{}, err
	}
	now, _, _ := v1.SHA256(bytes.NewReader(raw))
	if prev != (v1.Hash{}) && prev != now {
		_ = remote.Delete(s.repo.Digest(prev.String()), opts...)
	}
	return now, nil
}

// emptyDigest is the digest of "{}", the config of every manifest the hub pushes.
var emptyDigest = v1.Hash{Algorithm: "sha256", Hex: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}

type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (s *OCIStore) manifest(ctx context.Context, ref name.Reference) (*v1.Manifest, v1.Hash, error) {
	desc, err := remote.Get(ref, s.remote(ctx)...)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, v1.Hash{}, err
	}
	return m, desc.Digest, nil
}

// Get returns the artifact's bytes, from the cache or the registry, checked against
// digest. The slice is shared with the cache: callers must not change it.
func (s *OCIStore) Get(digest string) ([]byte, error) {
	if !ValidDigest(digest) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidDigest, digest)
	}
	if data, ok := s.cache.get(digest); ok {
		return data, nil
	}
	// Many agents ask for a new artifact at once: one registry read serves them all.
	return s.flight.do(digest, func() ([]byte, error) {
		if data, ok := s.cache.get(digest); ok {
			return data, nil
		}
		ctx, cancel := s.op()
		defer cancel()
		data, err := s.blob(ctx, digest)
		if err != nil {
			return nil, err
		}
		s.cache.add(digest, data)
		return data, nil
	})
}

// blob reads a blob and checks its digest itself: the registry is trusted to store,
// not to tell the truth.
func (s *OCIStore) blob(ctx context.Context, digest string) ([]byte, error) {
	rt, err := s.transport(ctx, transport.PullScope)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", s.repo, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.blobURL(digest), nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s from %s: %w", digest, s.repo, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("artifact %s: %w", digest, fs.ErrNotExist)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("storage: reading %s from %s: %s", digest, s.repo, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, artifact.DefaultMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s from %s: %w", digest, s.repo, err)
	}
	if got := artifact.Digest(data); got != digest {
		return nil, fmt.Errorf("%w: asked for %s, got %s", ErrDigestMismatch, digest, got)
	}
	return data, nil
}

func (s *OCIStore) transport(ctx context.Context, scope string) (http.RoundTripper, error) {
	auth, err := authn.Resolve(ctx, s.opts.Keychain, s.repo)
	if err != nil {
		return nil, err
	}
	return transport.NewWithContext(ctx, s.repo.Registry, auth, s.opts.Transport, []string{s.repo.Scope(scope)})
}

func (s *OCIStore) blobURL(digest string) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", s.repo.Scheme(), s.repo.RegistryStr(), s.repo.RepositoryStr(), digest)
}

// knownFor is how long a Has that found an artifact is believed. Only the collector
// deletes, in the same process (the leader), and it forgets the digest first.
const knownFor = time.Minute

// Has reports whether the artifact's manifest is in the registry.
func (s *OCIStore) Has(digest string) bool {
	if !ValidDigest(digest) {
		return false
	}
	if s.known.has(digest) {
		return true
	}
	ctx, cancel := s.op()
	defer cancel()
	if _, err := remote.Head(s.repo.Tag(TagOf(digest)), s.remote(ctx)...); err != nil {
		return false
	}
	s.known.add(digest)
	return true
}

// List returns the artifacts in the repository (one manifest read each), with the
// time each was last put.
func (s *OCIStore) List() ([]Stored, error) {
	ctx, cancel := s.op()
	defer cancel()
	tags, err := remote.List(s.repo, s.remote(ctx)...)
	if notFound(err) {
		return nil, nil // nothing pushed yet
	}
	if err != nil {
		return nil, fmt.Errorf("storage: listing %s: %w", s.repo, err)
	}
	var out []Stored
	for _, tag := range tags {
		hex, ok := strings.CutPrefix(tag, "sha256-")
		if !ok || !ValidDigest("sha256:"+hex) {
			continue // the history, and anything else, is not an artifact
		}
		m, _, err := s.manifest(ctx, s.repo.Tag(tag))
		if notFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("storage: %s: %w", tag, err)
		}
		if len(m.Layers) != 1 || m.Layers[0].Digest.String() != "sha256:"+hex {
			continue // not pushed by a hub
		}
		at, _ := time.Parse(time.RFC3339, m.Annotations[storedAt]) // no time: old enough
		out = append(out, Stored{Digest: "sha256:" + hex, Size: m.Layers[0].Size, ModTime: at})
	}
	return out, nil
}

// Delete removes the artifact's tag, its manifest and its blob. A registry that
// refuses to delete manifests gives ErrDeleteRefused; one that refuses only blob
// deletes frees the blob in its own garbage collection, since no manifest names it.
func (s *OCIStore) Delete(digest string) error {
	if !ValidDigest(digest) {
		return fmt.Errorf("%w: %q", ErrInvalidDigest, digest)
	}
	l := s.lock(digest)
	l.Lock()
	defer l.Unlock()
	s.known.forget(digest)
	s.cache.remove(digest)
	ctx, cancel := s.op()
	defer cancel()
	opts := s.remote(ctx)
	tag := s.repo.Tag(TagOf(digest))
	desc, err := remote.Head(tag, opts...)
	switch {
	case notFound(err):
	case err != nil:
		return fmt.Errorf("storage: %s: %w", tag, err)
	default:
		// Deleting a tag is OCI 1.1; registries without it untag when the manifest
		// goes.
		_ = remote.Delete(tag, opts...)
		if err := remote.Delete(s.repo.Digest(desc.Digest.String()), opts...); err != nil && !notFound(err) {
			return fmt.Errorf("%w: %s: %v", ErrDeleteRefused, tag, err)
		}
	}
	rt, err := s.transport(ctx, transport.DeleteScope)
	if err != nil {
		return nil // the manifest is gone; the blob waits for the registry's own GC
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.blobURL(digest), nil)
	if err != nil {
		return nil
	}
	if resp, err := (&http.Client{Transport: rt}).Do(req); err == nil {
		resp.Body.Close()
	}
	return nil
}

// LoadHistory reads the history from the repository; none yet is an empty history.
func (s *OCIStore) LoadHistory() (History, error) {
	ctx, cancel := s.op()
	defer cancel()
	m, _, err := s.manifest(ctx, s.repo.Tag(HistoryTag))
	if notFound(err) {
		return History{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", HistoryTag, err)
	}
	if len(m.Layers) != 1 {
		return nil, fmt.Errorf("storage: %s has %d layers, want 1", HistoryTag, len(m.Layers))
	}
	data, err := s.blob(ctx, m.Layers[0].Digest.String())
	if err != nil {
		return nil, err
	}
	h := History{}
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("storage: %s: %w", HistoryTag, err)
	}
	s.historyMu.Lock()
	s.lastHistory = data
	s.historyMu.Unlock()
	return h, nil
}

// SaveHistory pushes the history when it changed since it was last read or saved.
func (s *OCIStore) SaveHistory(h History) error {
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	s.historyMu.Lock()
	defer s.historyMu.Unlock()
	if bytes.Equal(data, s.lastHistory) {
		return nil
	}
	ctx, cancel := s.op()
	defer cancel()
	tag := s.repo.Tag(HistoryTag)
	var prev v1.Hash
	if desc, err := remote.Head(tag, s.remote(ctx)...); err == nil {
		prev = desc.Digest
	}
	if _, err := s.push(ctx, tag, data, historyMediaType, prev); err != nil {
		return fmt.Errorf("storage: saving %s: %w", HistoryTag, err)
	}
	s.lastHistory = data
	return nil
}

// Handler serves GET and HEAD of PathPrefix<hex>.tar.gz, read through from the
// registry.
func (s *OCIStore) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		digest, ok := requestedDigest(w, r)
		if !ok {
			return
		}
		data, err := s.Get(digest)
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, "cannot read the artifact from the registry", http.StatusBadGateway)
			return
		}
		serveArtifact(w, r, digest, time.Time{}, bytes.NewReader(data))
	})
}

func notFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// expiring is a set of digests, each for knownFor.
type expiring struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (e *expiring) add(d string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if e.m == nil {
		e.m = map[string]time.Time{}
	}
	if len(e.m) >= 4096 {
		for k, until := range e.m {
			if now.After(until) {
				delete(e.m, k)
			}
		}
	}
	e.m[d] = now.Add(knownFor)
}

func (e *expiring) has(d string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	until, ok := e.m[d]
	return ok && time.Now().Before(until)
}

func (e *expiring) forget(d string) {
	e.mu.Lock()
	delete(e.m, d)
	e.mu.Unlock()
}

// flight runs one read per digest at a time and gives its result to every caller
// that asked meanwhile.
type flight struct {
	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	done chan struct{}
	data []byte
	err  error
}

func (f *flight) do(key string, fn func() ([]byte, error)) ([]byte, error) {
	f.mu.Lock()
	if c, ok := f.calls[key]; ok {
		f.mu.Unlock()
		<-c.done
		return c.data, c.err
	}
	if f.calls == nil {
		f.calls = map[string]*call{}
	}
	c := &call{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()
	c.data, c.err = fn()
	f.mu.Lock()
	delete(f.calls, key)
	f.mu.Unlock()
	close(c.done)
	return c.data, c.err
}
