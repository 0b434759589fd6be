package fetch

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

type fixture struct {
	files   map[string][]byte
	data    []byte
	art     fleetv1.SignedArtifact
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
	f.art = fleetv1.SignedArtifact{URL: srv.URL + "/a.tar.gz", Digest: digest, Signature: artifact.Sign(key, digest), Revision: "main@sha1:0123"}
	f.keys = []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	return f
}

func (f *fixture) fetcher(t *testing.T, dir string) *Fetcher {
	t.Helper()
	fe, err := New(Options{Dir: dir, TrustedKeys: f.keys, RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Timeout: 5 * time.Second})
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
	cached := filepath.Join(dir, strings.TrimPrefix(f.art.Digest, "sha256:")+".tar.gz")
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

func TestFetchRefusesBadSignatureWithoutDownloading(t *testing.T) {
	f := newFixture(t)
	other, _ := artifact.GenerateKey()
	art := f.art
	art.Signature = artifact.Sign(other, art.Digest)
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
	art := f.art
	art.Digest = "sha256:../../etc/passwd"
	art.Signature = artifact.Sign(f.key, art.Digest)
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
	fe, err := New(Options{TrustedKeys: f.keys, MaxSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fe.Fetch(context.Background(), f.art); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("error %v, want one about the size limit", err)
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
