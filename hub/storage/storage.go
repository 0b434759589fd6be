package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

// ErrInvalidDigest is returned for a digest that is not sha256:<64 lowercase hex>.
var ErrInvalidDigest = errors.New("invalid artifact digest")

// PathPrefix is where Handler serves artifacts, below the base URL.
const PathPrefix = "/artifacts/sha256/"

const ext = ".tar.gz"

// digestRE is strict on purpose: the digest becomes a file name, so nothing but
// lowercase hex may reach the file system.

// ValidDigest reports whether d is sha256:<64 lowercase hex>.
func ValidDigest(d string) bool { return meta.ValidDigest(d) }

// Artifacts is what the controllers need of a store. The file store (Store) and the
// registry-backed one (OCIStore) both are one; a controller never knows which.
type Artifacts interface {
	// Put stores data under its digest (sha256 of the bytes) and returns the digest.
	Put(data []byte) (string, error)
	// Get returns the bytes of a digest; an unknown one is an error matching
	// fs.ErrNotExist, and bytes that do not hash to the digest are never returned.
	Get(digest string) ([]byte, error)
	// Has reports whether the digest is stored.
	Has(digest string) bool
	// URL is where agents download the digest: always the hub's artifact server.
	URL(digest string) string
}

// Backend is a whole store as the hub runs it: the controllers' part, the
// collector's part and the artifact server's handler.
type Backend interface {
	Artifacts
	List() ([]Stored, error)
	Delete(digest string) error
	LoadHistory() (History, error)
	SaveHistory(History) error
	Handler() http.Handler
}

var (
	_ Backend = (*Store)(nil)
	_ Backend = (*OCIStore)(nil)
)

// Store keeps artifacts at <dir>/sha256/<hex>.tar.gz.
type Store struct {
	dir string

	mu      sync.RWMutex
	baseURL string
}

// New opens (creating when needed) a store in dir whose artifacts are served at baseURL.
func New(dir, baseURL string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("storage: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(abs, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	s := &Store{dir: abs}
	s.SetBaseURL(baseURL)
	return s, nil
}

// SetBaseURL changes the address artifacts are served at; the listener may only know
// its port after New.
func (s *Store) SetBaseURL(u string) {
	s.mu.Lock()
	s.baseURL = strings.TrimRight(u, "/")
	s.mu.Unlock()
}

// BaseURL returns the address artifacts are served at.
func (s *Store) BaseURL() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.baseURL
}

// Dir returns the store's root folder.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(digest string) (string, error) {
	if !ValidDigest(digest) {
		return "", fmt.Errorf("%w: %q", ErrInvalidDigest, digest)
	}
	return filepath.Join(s.dir, "sha256", strings.TrimPrefix(digest, "sha256:")+ext), nil
}

// Put stores data under its digest and returns the digest. The same bytes are stored
// once; the file appears whole or not at all.
func (s *Store) Put(data []byte) (string, error) {
	digest := artifact.Digest(data)
	p, err := s.path(digest)
	if err != nil {
		return "", err
	}
	// A file of the right size under this name has these bytes: it was renamed into
	// place only after a complete write.
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() == int64(len(data)) {
		// Stored again now: the collector's grace period counts from here, so it
		// does not delete bytes a controller is about to reference once more.
		now := time.Now()
		if err := os.Chtimes(p, now, now); err == nil {
			return digest, nil
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("storage: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", fmt.Errorf("storage: writing %s: %w", digest, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("storage: writing %s: %w", digest, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("storage: writing %s: %w", digest, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("storage: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("storage: storing %s: %w", digest, err)
	}
	return digest, nil
}

// Get returns the artifact's bytes; an unknown digest gives an error matching
// fs.ErrNotExist.
func (s *Store) Get(digest string) ([]byte, error) {
	p, err := s.path(digest)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("artifact %s: %w", digest, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("storage: %w", err)
	}
	return data, nil
}

// Has reports whether the artifact is stored.
func (s *Store) Has(digest string) bool {
	p, err := s.path(digest)
	if err != nil {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Delete removes an artifact; removing an unknown one is not an error.
func (s *Store) Delete(digest string) error {
	p, err := s.path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// URL is where Handler serves the artifact, or "" for an invalid digest.
func (s *Store) URL(digest string) string { return artifactURL(s.BaseURL(), digest) }

// artifactURL is where a store with this base URL serves digest; every store serves
// the same paths, so an agent cannot tell which store the hub keeps its artifacts in.
func artifactURL(base, digest string) string {
	if !ValidDigest(digest) {
		return ""
	}
	return base + PathPrefix + strings.TrimPrefix(digest, "sha256:") + ext
}

// GrantParam is the query parameter of an artifact URL that carries a download grant
// (hub/signing makes it, hub/artifactauth checks it). The store's handler ignores it.
const GrantParam = "grant"

// GrantedURL returns the artifact URL u carrying grant, in place of any grant it had:
// the same u and grant always give the same URL. An empty or unparsable u is returned
// as it is.
func GrantedURL(u, grant string) string {
	if u == "" {
		return u
	}
	parsed, err := neturl.Parse(u)
	if err != nil {
		return u
	}
	q := parsed.Query()
	q.Set(GrantParam, grant)
	parsed.RawQuery = q.Encode() // sorted by key: deterministic
	return parsed.String()
}

// Handler serves GET and HEAD of PathPrefix<hex>.tar.gz from the store.
func (s *Store) Handler() http.Handler {
	// hub/metrics counts what it serves (the manager wraps it).
	return http.HandlerFunc(s.serve)
}

// requestedDigest checks the method and name of an artifact request and writes the
// error itself when it is not one.
func requestedDigest(w http.ResponseWriter, r *http.Request) (string, bool) {
	name, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	hex, okExt := strings.CutSuffix(name, ext)
	digest := "sha256:" + hex
	if !ok || !okExt || !ValidDigest(digest) {
		http.Error(w, "malformed artifact name: want "+PathPrefix+"<64 hex>"+ext, http.StatusBadRequest)
		return "", false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return "", false
	}
	return digest, true
}

// serveArtifact writes an artifact's response; content's name is its hash, so the
// response never changes.
func serveArtifact(w http.ResponseWriter, r *http.Request, digest string, modTime time.Time, content io.ReadSeeker) {
	h := w.Header()
	h.Set("Content-Type", "application/gzip")
	// private: the request carried an agent's credential and was authorised for its
	// cluster alone, so no shared cache (a proxy between spoke and hub) may keep the
	// answer for others; the agent's own copy never goes stale.
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("ETag", `"`+digest+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", modTime, content)
}

func (s *Store) serve(w http.ResponseWriter, r *http.Request) {
	digest, ok := requestedDigest(w, r)
	if !ok {
		return
	}
	p, _ := s.path(digest)
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "cannot read artifact", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	serveArtifact(w, r, digest, fi.ModTime(), f)
}
