package helmrepo

import (
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/flotilla-dev/flotilla/test/charts"
)

// Server serves a chart repository from a folder.
type Server struct {
	t          testing.TB
	dir        string
	srv        *httptest.Server
	user, pass string
	mu         sync.Mutex
}

// Option configures a Server.
type Option func(*Server)

// WithBasicAuth refuses every request without these credentials.
func WithBasicAuth(user, pass string) Option {
	return func(s *Server) { s.user, s.pass = user, pass }
}

// New starts an empty repository (its index lists no charts) that stops when the
// test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir()}
	for _, o := range opts {
		o(s)
	}
	files := http.FileServer(http.Dir(s.dir))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.pass)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.reindex()
	return s
}

// URL is the repository's address (index.yaml is below it).
func (s *Server) URL() string { return s.srv.URL }

// AddChart packages a chart with one ConfigMap template and re-indexes the repository.
func (s *Server) AddChart(name, version string) {
	s.t.Helper()
	c := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: name, Version: version, AppVersion: version, Type: "application"},
		Values:   map[string]any{"replicas": 1},
		Templates: []*chart.File{{
			Name: "templates/configmap.yaml",
			Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  version: " + version + "\n"),
		}},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := chartutil.Save(c, s.dir); err != nil {
		s.t.Fatal(err)
	}
	s.reindexLocked()
}

// Add packages c into the repository and re-indexes it.
func (s *Server) Add(c charts.Chart) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c.SaveTo(s.t, s.dir)
	s.reindexLocked()
}

func (s *Server) reindex() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reindexLocked()
}

func (s *Server) reindexLocked() {
	s.t.Helper()
	idx, err := repo.IndexDirectory(s.dir, s.srv.URL)
	if err != nil {
		s.t.Fatal(err)
	}
	idx.SortEntries()
	if err := idx.WriteFile(filepath.Join(s.dir, "index.yaml"), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// WriteIndex replaces index.yaml with raw bytes, for tests of broken repositories.
func (s *Server) WriteIndex(data []byte) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.WriteFile(filepath.Join(s.dir, "index.yaml"), data, 0o644); err != nil {
		s.t.Fatal(err)
	}
}
