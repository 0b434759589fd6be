package fetch

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

type fixture struct {
	files   map[string][]byte
	data    []byte
	art     *fleetv1.Assignment
	key     ed25519.PrivateKey
	keys    []ed25519.PublicKey
	hits    atomic.Int32
	failing atomic.Int32 // answer 503 this many times first
	serve   []byte       // what the server sends instead of data, when set
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	key, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{key: key, files: map[string][]byte{"manifests.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")}}
	if f.data, err = artifact.Pack(f.files); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if f.failing.Add(-1) >= 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if f.serve != nil {
			w.Write(f.serve)
			return
		}
		w.Write(f.data)
	}))
	t.Cleanup(srv.Close)
	digest := artifact.Digest(f.data)
	f.art = &fleetv1.Assignment{
		ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(testCluster), Name: "ks.apps.web"},
		Spec:       fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{URL: srv.URL + "/a.tar.gz", Digest: digest, Revision: "main@sha1:0123"}},
	}
	sign(t, f.art, key)
	f.keys = []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	return f
}

const testCluster = "c1"

// sign signs a's apply statement for testCluster with key, as the hub does.
func sign(t *testing.T, a *fleetv1.Assignment, key ed25519.PrivateKey) {
	t.Helper()
	sig, err := artifact.SignStatement(key, testCluster, a)
	if err != nil {
		t.Fatal(err)
	}
	a.Spec.Artifact.Signature = sig
}

func (f *fixture) fetcher(t *testing.T, dir string) *Fetcher {
	t.Helper()
	fe, err := New(Options{Cluster: testCluster, Dir: dir, TrustedKeys: f.keys, RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return fe
}

func TestFetchVerifiesAndCaches(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	fe := f.fetcher(t, dir)
	files, err := fe.Fetch(context.Background(), f.art)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(f.files, files); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	// A second fetch, also by a new Fetcher (an agent restart), is served from disk.
	if _, err := f.fetcher(t, dir).Fetch(context.Background(), f.art); err != nil {
		t.Fatal(err)
	}
	if n := f.hits.Load(); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
	// A damaged cache file costs a download, not a failure.
	cached := filepath.Join(dir, strings.TrimPrefix(f.art.Spec.Artifact.Digest, "sha256:")+".tar.gz")
	if err := os.WriteFile(cached, []byte("rotten"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fe.Fetch(context.Background(), f.art); err != nil {
		t.Fatal(err)
	}
	if n := f.hits.Load(); n != 2 {
		t.Errorf("%d downloads, want 2", n)
	}
}

// TestFetchSendsTheGrantAndCachesByDigest: the artifact URL's query (the hub's
// download grant) reaches the artifact server as it is signed, and the cache is keyed
// by digest, so a URL granted anew (the hub's key rotated) downloads nothing again.
func TestFetchSendsTheGrantAndCachesByDigest(t *testing.T) {
	f := newFixture(t)
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		got.Store(r.URL.RequestURI())
		w.Write(f.data)
	}))
	t.Cleanup(srv.Close)
	f.art.Spec.Artifact.URL = srv.URL + "/artifacts/sha256/x.tar.gz?grant=AQ-_x"
	sign(t, f.art, f.key)
	fe, err := New(Options{Cluster: testCluster, ArtifactURL: srv.URL, Dir: t.TempDir(), TrustedKeys: f.keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fe.Fetch(context.Background(), f.art); err != nil {
		t.Fatal(err)
	}
	if u, _ := got.Load().(string); u != "/artifacts/sha256/x.tar.gz?grant=AQ-_x" {
		t.Errorf("the server was asked for %q, want the signed URL with its grant", u)
	}
	f.art.Spec.Artifact.URL = srv.URL + "/artifacts/sha256/x.tar.gz?grant=AQ-other"
	sign(t, f.art, f.key)
	if _, err := fe.Fetch(context.Background(), f.art); err != nil {
		t.Fatal(err)
	}
	if n := f.hits.Load(); n != 1 {
		t.Errorf("%d downloads, want 1: the cache is keyed by digest, not URL", n)
	}
}

func TestFetchRefusesBadSignatureWithoutDownloading(t *testing.T) {
	f := newFixture(t)
	other, _ := artifact.GenerateKey()
	art := f.art.DeepCopy()
	sign(t, art, other)
	_, err := f.fetcher(t, "").Fetch(context.Background(), art)
	if !IsVerificationError(err) || !strings.Contains(err.Error(), "signature does not verify against any trusted key") {
		t.Fatalf("error %v, want a verification error about the signature", err)
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("%d downloads of an artifact whose signature does not verify", n)
	}
}

func TestFetchRefusesDigestMismatch(t *testing.T) {
	f := newFixture(t)
	f.serve, _ = artifact.Pack(map[string][]byte{"evil.yaml": []byte("kind: x")})
	dir := t.TempDir()
	_, err := f.fetcher(t, dir).Fetch(context.Background(), f.art)
	if !IsVerificationError(err) || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("error %v, want a verification error about the digest", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz")); len(m) != 0 {
		t.Errorf("unverified bytes were cached: %v", m)
	}
}

func TestFetchRefusesMalformedDigest(t *testing.T) {
	f := newFixture(t)
	art := f.art.DeepCopy()
	art.Spec.Artifact.Digest = "sha256:../../etc/passwd"
	sign(t, art, f.key)
	if _, err := f.fetcher(t, t.TempDir()).Fetch(context.Background(), art); !IsVerificationError(err) {
		t.Fatalf("error %v, want a verification error", err)
	}
}

func TestFetchRetries(t *testing.T) {
	f := newFixture(t)
	f.failing.Store(2)
	if _, err := f.fetcher(t, "").Fetch(context.Background(), f.art); err != nil {
		t.Fatal(err)
	}
	if n := f.hits.Load(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}

	g := newFixture(t)
	g.failing.Store(100)
	_, err := g.fetcher(t, "").Fetch(context.Background(), g.art)
	if err == nil || IsVerificationError(err) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("error %v, want a download error naming the status", err)
	}
	if n := g.hits.Load(); n != 3 {
		t.Errorf("%d attempts, want 3 (RetryMax 2)", n)
	}
}

func TestFetchSizeLimit(t *testing.T) {
	f := newFixture(t)
	fe, err := New(Options{Cluster: testCluster, TrustedKeys: f.keys, MaxSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fe.Fetch(context.Background(), f.art); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("error %v, want one about the size limit", err)
	}
}

// An Assignment edited, copied to another cluster or pointing elsewhere than the
// registered artifact server applies nothing and downloads nothing.
func TestFetchRefusesWhatTheHubDidNotSign(t *testing.T) {
	f := newFixture(t)
	for name, edit := range map[string]func(a *fleetv1.Assignment){
		"service account":   func(a *fleetv1.Assignment) { a.Spec.ServiceAccountName = "flotilla-agent" },
		"target namespace":  func(a *fleetv1.Assignment) { a.Spec.TargetNamespace = "kube-system" },
		"other cluster":     func(a *fleetv1.Assignment) { a.Namespace = fleetv1.ClusterNamespace("c2") },
		"url on other host": func(a *fleetv1.Assignment) { a.Spec.Artifact.URL = "http://203.0.113.9/a.tar.gz" },
	} {
		a := f.art.DeepCopy()
		edit(a)
		if _, err := f.fetcher(t, "").Fetch(context.Background(), a); !IsVerificationError(err) || !errors.Is(err, artifact.ErrSignature) {
			t.Errorf("%s: error %v, want a signature verification error", name, err)
		}
	}
	// The same Assignment verifies for its own cluster only.
	fe, err := New(Options{Cluster: "c2", TrustedKeys: f.keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fe.Fetch(context.Background(), f.art); !IsVerificationError(err) {
		t.Errorf("another cluster's agent accepted the Assignment: %v", err)
	}
	// A URL the hub signed but that is not on the registered artifact server.
	pinned, err := New(Options{Cluster: testCluster, TrustedKeys: f.keys, ArtifactURL: "https://hub.example:9090"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pinned.Fetch(context.Background(), f.art); !IsVerificationError(err) || !strings.Contains(err.Error(), "not on the hub artifact server") {
		t.Errorf("error %v, want a refusal of the URL", err)
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("%d downloads of refused Assignments", n)
	}
}

func TestAllowedURL(t *testing.T) {
	base := "https://hub.example:9090"
	for url, ok := range map[string]bool{
		"https://hub.example:9090/artifacts/sha256:00.tar.gz": true,
		// The hub's download grant rides in the query; the path check is the same.
		"https://hub.example:9090/artifacts/sha256/00.tar.gz?grant=AQ-_x": true,
		"https://evil.example/artifacts/sha256/00.tar.gz?grant=AQ-_x":     false,
		"https://hub.example:9090?grant=AQ-_x":                            false,
		"http://hub.example:9090/artifacts/x":                             false,
		"https://hub.example:9091/artifacts/x":                            false,
		"https://evil.example/artifacts/x":                                false,
		"https://user@hub.example:9090/artifacts/x":                       false,
		"https://hub.example:9090.evil.example/x":                         false,
	} {
		if err := AllowedURL(base, url); (err == nil) != ok {
			t.Errorf("AllowedURL(%s) = %v, want allowed=%v", url, err, ok)
		}
	}
	if err := AllowedURL("https://hub.example/prefix", "https://hub.example/prefixed/x"); err == nil {
		t.Error("a path that only starts like the base was allowed")
	}
	if err := AllowedURL("", "http://anything/x"); err != nil {
		t.Errorf("no registered URL must allow any: %v", err)
	}
}

func TestEvict(t *testing.T) {
	dir := t.TempDir()
	fe, err := New(Options{Dir: dir, MaxCached: 2})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i, name := range []string{"a", "b", "c"} {
		p := filepath.Join(dir, name+".tar.gz")
		os.WriteFile(p, nil, 0o600)
		at := base.Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, at, at)
	}
	if err := fe.evict(); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz"))
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	if d := cmp.Diff([]string{"b.tar.gz", "c.tar.gz"}, m); d != "" {
		t.Errorf("kept (-want +got):\n%s", d)
	}
}
