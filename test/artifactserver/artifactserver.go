package artifactserver

import (
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Server serves the artifacts added to it until the test ends.
type Server struct {
	t   testing.TB
	key ed25519.PrivateKey
	srv *httptest.Server

	mu   sync.Mutex
	data map[string][]byte // by file name: <hex digest>.tar.gz
	hits map[string]int
}

// New starts a server with a new signing key.
func New(t testing.TB) *Server {
	t.Helper()
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, key: key, data: map[string][]byte{}, hits: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		s.mu.Lock()
		s.hits[name]++
		d, ok := s.data[name]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(d)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// PublicKey verifies what the server signs: the key an agent must trust.
func (s *Server) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Add packs files (name to content) and returns the artifact an Assignment points
// at; Sign then signs the Assignment that carries it, as the hub does.
func (s *Server) Add(revision string, files map[string]string) fleetv1.SignedArtifact {
	s.t.Helper()
	in := map[string][]byte{}
	for k, v := range files {
		in[k] = []byte(v)
	}
	data, err := artifact.Pack(in)
	if err != nil {
		s.t.Fatal(err)
	}
	digest := artifact.Digest(data)
	name := fileName(digest)
	s.mu.Lock()
	s.data[name] = data
	s.mu.Unlock()
	return fleetv1.SignedArtifact{URL: s.srv.URL + "/" + name, Digest: digest, Revision: revision}
}

// Sign signs a's apply statement for cluster with the server's key, as the hub does
// before it writes an Assignment.
func (s *Server) Sign(cluster string, a *fleetv1.Assignment) {
	s.t.Helper()
	SignWith(s.t, s.key, cluster, a)
}

// SignWith signs a's apply statement for cluster with key.
func SignWith(t testing.TB, key ed25519.PrivateKey, cluster string, a *fleetv1.Assignment) {
	t.Helper()
	sig, err := artifact.SignStatement(key, cluster, a)
	if err != nil {
		t.Fatal(err)
	}
	a.Spec.Artifact.Signature = sig
}

// Downloads counts the requests for an artifact so far.
func (s *Server) Downloads(a fleetv1.SignedArtifact) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[fileName(a.Digest)]
}

func fileName(digest string) string { return strings.TrimPrefix(digest, "sha256:") + ".tar.gz" }
