package registry

import (
	"crypto/subtle"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

// Media types of a Flux-style OCI artifact: a config blob and one tar.gz layer.
const (
	ConfigMediaType  types.MediaType = "application/vnd.cncf.flux.config.v1+json"
	ContentMediaType types.MediaType = "application/vnd.cncf.flux.content.v1.tar+gzip"
)

// Server is a registry on 127.0.0.1 over plain HTTP.
type Server struct {
	t          testing.TB
	srv        *httptest.Server
	user, pass string
}

// Option configures a Server.
type Option func(*Server)

// WithBasicAuth refuses every request without these credentials.
func WithBasicAuth(user, pass string) Option {
	return func(s *Server) { s.user, s.pass = user, pass }
}

// New starts a registry that stops when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t}
	for _, o := range opts {
		o(s)
	}
	reg := registry.New(registry.Logger(log.New(testLog{t}, "", 0)))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.pass)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("registry: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// Host is host:port of the registry.
func (s *Server) Host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// URL is the oci:// address of repository repo.
func (s *Server) URL(repo string) string { return "oci://" + s.Host() + "/" + repo }

// Push packs files into a one-layer artifact, pushes it as repo:tag and returns the
// manifest digest (sha256:<hex>).
func (s *Server) Push(repo, tag string, files map[string]string) string {
	s.t.Helper()
	m := make(map[string][]byte, len(files))
	for k, v := range files {
		m[k] = []byte(v)
	}
	data, err := artifact.Pack(m)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.PushLayer(repo, tag, data)
}

// Media types of a Helm chart in an OCI registry, as `helm push` writes it.
const (
	HelmConfigMediaType types.MediaType = "application/vnd.cncf.helm.config.v1+json"
	HelmChartMediaType  types.MediaType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

// PushChart pushes a chart's .tgz as `helm push` does: to repository
// <base>/<name>, tagged with the version (a + in it becomes _). It returns the
// manifest digest.
func (s *Server) PushChart(base, name, version string, tgz []byte) string {
	s.t.Helper()
	return s.push(base+"/"+name, strings.ReplaceAll(version, "+", "_"), tgz, HelmConfigMediaType, HelmChartMediaType)
}

// PushLayer pushes one raw layer (normally a tar.gz) as repo:tag.
func (s *Server) PushLayer(repo, tag string, layer []byte) string {
	s.t.Helper()
	return s.push(repo, tag, layer, ConfigMediaType, ContentMediaType)
}

// Layer is one layer of a multi-layer artifact.
type Layer struct {
	Data      []byte
	MediaType types.MediaType
	// Title, when set, is the org.opencontainers.image.title annotation (a file name).
	Title string
}

// PushLayers pushes an artifact of several layers, in order, as repo:tag and returns
// the manifest digest.
func (s *Server) PushLayers(repo, tag string, layers ...Layer) string {
	s.t.Helper()
	return s.pushImage(repo, tag, ConfigMediaType, layers)
}

func (s *Server) push(repo, tag string, layer []byte, configType, layerType types.MediaType) string {
	s.t.Helper()
	return s.pushImage(repo, tag, configType, []Layer{{Data: layer, MediaType: layerType}})
}

func (s *Server) pushImage(repo, tag string, configType types.MediaType, layers []Layer) string {
	s.t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, configType)
	for _, l := range layers {
		add := mutate.Addendum{Layer: static.NewLayer(l.Data, l.MediaType)}
		if l.Title != "" {
			add.Annotations = map[string]string{"org.opencontainers.image.title": l.Title}
		}
		var err error
		if img, err = mutate.Append(img, add); err != nil {
			s.t.Fatal(err)
		}
	}
	ref, err := name.NewTag(s.Host()+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		s.t.Fatal(err)
	}
	auth := authn.Anonymous
	if s.user != "" {
		auth = &authn.Basic{Username: s.user, Password: s.pass}
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		s.t.Fatalf("pushing %s: %v", ref, err)
	}
	return digestOf(s.t, img)
}

func digestOf(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
