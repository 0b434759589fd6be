package storage

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir(), "http://hub.example:9000/")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutGetHasDelete(t *testing.T) {
	s := newStore(t)
	data := []byte("some artifact")
	d, err := s.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	if d != artifact.Digest(data) {
		t.Fatalf("digest %s, want %s", d, artifact.Digest(data))
	}
	if !s.Has(d) {
		t.Fatal("Has is false after Put")
	}
	got, err := s.Get(d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	file := filepath.Join(s.Dir(), "sha256", strings.TrimPrefix(d, "sha256:")+".tar.gz")
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("stored file: %v %v", fi, err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if s.Has(d) {
		t.Fatal("Has is true after Delete")
	}
	if _, err := s.Get(d); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestPutSameBytesOnceAndNoTempLeft(t *testing.T) {
	s := newStore(t)
	data := []byte("same")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Put(data); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	entries, err := os.ReadDir(filepath.Join(s.Dir(), "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".tar.gz") {
		t.Fatalf("want one stored file, got %v", entries)
	}
}

func TestPutRepairsTruncatedFile(t *testing.T) {
	s := newStore(t)
	data := []byte("complete content")
	d, _ := s.Put(data)
	file := filepath.Join(s.Dir(), "sha256", strings.TrimPrefix(d, "sha256:")+".tar.gz")
	if err := os.WriteFile(file, data[:3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(data); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(d); !bytes.Equal(got, data) {
		t.Fatalf("not repaired: %q", got)
	}
}

func TestDigestValidation(t *testing.T) {
	s := newStore(t)
	hex := strings.Repeat("a", 64)
	for _, d := range []string{
		"", "sha256:", "sha256:" + hex[:63], "sha256:" + hex + "0", "sha256:" + strings.ToUpper(hex),
		"sha512:" + hex, hex, "sha256:../../../../etc/passwd", "sha256:" + hex[:60] + "/../",
	} {
		if _, err := s.Get(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Get(%q) = %v, want ErrInvalidDigest", d, err)
		}
		if err := s.Delete(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidDigest", d, err)
		}
		if s.Has(d) {
			t.Errorf("Has(%q) is true", d)
		}
		if u := s.URL(d); u != "" {
			t.Errorf("URL(%q) = %q", d, u)
		}
	}
}

func TestURL(t *testing.T) {
	s := newStore(t)
	d := "sha256:" + strings.Repeat("0", 64)
	if got, want := s.URL(d), "http://hub.example:9000/artifacts/sha256/"+strings.Repeat("0", 64)+".tar.gz"; got != want {
		t.Fatalf("URL = %s, want %s", got, want)
	}
	s.SetBaseURL("https://other")
	if got := s.URL(d); !strings.HasPrefix(got, "https://other/artifacts/sha256/") {
		t.Fatalf("after SetBaseURL: %s", got)
	}
}

func TestGrantedURL(t *testing.T) {
	base := "https://hub:9090/artifacts/sha256/" + strings.Repeat("0", 64) + ".tar.gz"
	for _, tc := range []struct{ in, grant, want string }{
		{base, "AQ-_x", base + "?grant=AQ-_x"},
		{base + "?grant=old", "new", base + "?grant=new"},
		{base + "?z=1", "g", base + "?grant=g&z=1"},
		{"", "g", ""},
	} {
		got := GrantedURL(tc.in, tc.grant)
		if got != tc.want {
			t.Errorf("GrantedURL(%q, %q) = %q, want %q", tc.in, tc.grant, got, tc.want)
		}
		if again := GrantedURL(got, tc.grant); again != got {
			t.Errorf("granting %q again gave %q", got, again)
		}
	}
}

func TestHandler(t *testing.T) {
	s := newStore(t)
	data := []byte("served bytes")
	d, _ := s.Put(data)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	s.SetBaseURL(srv.URL)
	unknown := "sha256:" + strings.Repeat("b", 64)

	for _, tc := range []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"get", http.MethodGet, strings.TrimPrefix(s.URL(d), srv.URL), 200, string(data)},
		{"head", http.MethodHead, strings.TrimPrefix(s.URL(d), srv.URL), 200, ""},
		{"granted", http.MethodGet, strings.TrimPrefix(GrantedURL(s.URL(d), "Zm9v"), srv.URL), 200, string(data)},
		{"unknown", http.MethodGet, strings.TrimPrefix(s.URL(unknown), srv.URL), 404, ""},
		{"post", http.MethodPost, strings.TrimPrefix(s.URL(d), srv.URL), 405, ""},
		{"delete", http.MethodDelete, strings.TrimPrefix(s.URL(d), srv.URL), 405, ""},
		{"short", http.MethodGet, "/artifacts/sha256/abc.tar.gz", 400, ""},
		{"upper", http.MethodGet, "/artifacts/sha256/" + strings.Repeat("A", 64) + ".tar.gz", 400, ""},
		{"no ext", http.MethodGet, "/artifacts/sha256/" + strings.TrimPrefix(d, "sha256:"), 400, ""},
		{"dotdot", http.MethodGet, "/artifacts/sha256/..%2f..%2fetc%2fpasswd", 400, ""},
		{"temp file", http.MethodGet, "/artifacts/sha256/.tmp-1", 400, ""},
		{"other prefix", http.MethodGet, "/other/" + strings.TrimPrefix(d, "sha256:") + ".tar.gz", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				if tc.body != string(body) {
					t.Fatalf("body %q, want %q", body, tc.body)
				}
				if resp.Header.Get("Content-Type") != "application/gzip" || resp.Header.Get("ETag") != `"`+d+`"` {
					t.Fatalf("headers %v", resp.Header)
				}
				if resp.ContentLength != int64(len(data)) {
					t.Fatalf("content length %d", resp.ContentLength)
				}
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Fatalf("Allow = %q", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestNewNeedsDir(t *testing.T) {
	if _, err := New("", "http://x"); err == nil {
		t.Fatal("New accepted an empty dir")
	}
}
