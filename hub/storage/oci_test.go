package storage

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/test/registry"
)

func newOCI(t *testing.T, address string, o OCIOptions) *OCIStore {
	t.Helper()
	s, err := NewOCI(address, "https://hub.example:9090/", o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOCIPutGetHas(t *testing.T) {
	reg := registry.New(t)
	s := newOCI(t, reg.URL("flotilla/artifacts"), OCIOptions{})
	data := []byte("an artifact's bytes")
	d, err := s.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	if d != artifact.Digest(data) {
		t.Fatalf("digest %s, want %s", d, artifact.Digest(data))
	}
	if _, err := s.Put(data); err != nil {
		t.Fatalf("putting the same bytes again: %v", err)
	}
	// A second store on the same repository (another hub replica) sees it: nothing
	// of it is kept only in the process that put it.
	other := newOCI(t, reg.URL("flotilla/artifacts"), OCIOptions{CacheBytes: -1})
	if !other.Has(d) {
		t.Fatal("Has is false after Put")
	}
	got, err := other.Get(d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	unknown := "sha256:" + strings.Repeat("b", 64)
	if other.Has(unknown) {
		t.Fatal("Has is true for an unknown digest")
	}
	if _, err := other.Get(unknown); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of an unknown digest: %v", err)
	}
	if _, err := other.Get("sha256:../x"); !errors.Is(err, ErrInvalidDigest) {
		t.Fatalf("Get of an invalid digest: %v", err)
	}
	// Agents download from the hub's artifact server, whichever store it keeps.
	file := newStore(t)
	file.SetBaseURL("https://hub.example:9090")
	if s.URL(d) != file.URL(d) {
		t.Fatalf("URL = %s, the file store's is %s", s.URL(d), file.URL(d))
	}
}

func TestOCIRefusesDigestMismatch(t *testing.T) {
	reg := registry.New(t)
	data := []byte("the real bytes")
	d, err := newOCI(t, reg.URL("a/b"), OCIOptions{}).Put(data)
	if err != nil {
		t.Fatal(err)
	}
	// A registry (or anything on the way) that answers a blob with other bytes.
	target, _ := url.Parse("http://" + reg.Host())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodGet && strings.Contains(r.Request.URL.Path, "/blobs/") {
			r.Body.Close()
			r.Body = io.NopCloser(strings.NewReader("forged bytes!!"))
		}
		return nil
	}
	lying := httptest.NewServer(proxy)
	defer lying.Close()
	s := newOCI(t, OCIScheme+strings.TrimPrefix(lying.URL, "http://")+"/a/b", OCIOptions{})
	if !s.Has(d) {
		t.Fatal("Has is false through the proxy")
	}
	if _, err := s.Get(d); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Get = %v, want ErrDigestMismatch", err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + PathPrefix + strings.TrimPrefix(d, "sha256:") + ext)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || bytes.Contains(body, []byte("forged")) {
		t.Fatalf("served %d %q, want 502 and not the forged bytes", resp.StatusCode, body)
	}
}

func TestOCIHandler(t *testing.T) {
	reg := registry.New(t)
	s := newOCI(t, reg.URL("served"), OCIOptions{})
	data := []byte("served bytes")
	d, _ := s.Put(data)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		path   string
		status int
	}{
		{PathPrefix + strings.TrimPrefix(d, "sha256:") + ext, 200},
		{PathPrefix + strings.Repeat("c", 64) + ext, 404},
		{PathPrefix + "abc" + ext, 400},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		if tc.status == 200 && (!bytes.Equal(body, data) || resp.Header.Get("ETag") != `"`+d+`"`) {
			t.Fatalf("body %q, headers %v", body, resp.Header)
		}
	}
}

func TestOCIListDeleteHistory(t *testing.T) {
	reg := registry.New(t)
	s := newOCI(t, reg.URL("gc"), OCIOptions{})
	if stored, err := s.List(); err != nil || len(stored) != 0 {
		t.Fatalf("List of an empty repository: %v, %v", stored, err)
	}
	began := time.Now().Add(-time.Second)
	a, _ := s.Put([]byte("a"))
	b, _ := s.Put([]byte("b"))
	h := History{"GitRepository/default/app": {b}}
	if err := s.SaveHistory(h); err != nil {
		t.Fatal(err)
	}
	stored, err := s.List()
	if err != nil || len(stored) != 2 {
		t.Fatalf("List = %+v, %v; want a and b (not the history)", stored, err)
	}
	for _, st := range stored {
		if st.ModTime.Before(began.Truncate(time.Second)) || st.Size != 1 {
			t.Fatalf("stored %+v: want size 1 and the time of its Put", st)
		}
	}
	// The collector's choice, with the time of its Put as the file store's mtime.
	gone := Unreferenced(stored, map[string]bool{b: true}, time.Now().Add(time.Minute))
	if len(gone) != 1 || gone[0].Digest != a {
		t.Fatalf("unreferenced: %+v", gone)
	}
	if _, err := s.Get(a); err != nil { // cached now: Delete must drop it
		t.Fatal(err)
	}
	if err := s.Delete(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(a); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if s.Has(a) {
		t.Fatal("Has is true after Delete")
	}
	if _, err := s.Get(a); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get after Delete: %v (the blob should be gone too)", err)
	}
	if stored, _ := s.List(); len(stored) != 1 || stored[0].Digest != b {
		t.Fatalf("List after Delete: %+v", stored)
	}
	// Another replica, once leader, reads the same history.
	back, err := newOCI(t, reg.URL("gc"), OCIOptions{}).LoadHistory()
	if err != nil || len(back["GitRepository/default/app"]) != 1 || back["GitRepository/default/app"][0] != b {
		t.Fatalf("LoadHistory = %v, %v", back, err)
	}
	// Put again after Delete brings it back.
	if _, err := s.Put([]byte("a")); err != nil || !s.Has(a) {
		t.Fatalf("Put after Delete: %v", err)
	}
}

func TestNewOCIAddress(t *testing.T) {
	for _, a := range []string{"", "file:///x", "https://r/x", "oci://", "oci://Bad Host/x"} {
		if _, err := NewOCI(a, "", OCIOptions{}); err == nil {
			t.Errorf("NewOCI(%q) accepted", a)
		}
	}
	s, err := NewOCI("oci://registry.example:5000/team/flotilla/", "", OCIOptions{})
	if err != nil || s.Repository() != "registry.example:5000/team/flotilla" {
		t.Fatalf("NewOCI = %v, %v", s, err)
	}
}
