package git

import (
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

func TestParseURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://example.com/r.git": true,
		"http://example.com/r.git":  true,
		"file:///srv/git/r.git":     true,
		"ssh://git@example.com/r":   true,
		"ssh:///r":                  false,
		"git://example.com/r":       false,
		"://nope":                   false,
	} {
		_, err := parseURL(raw)
		if (err == nil) != ok {
			t.Errorf("parseURL(%q) = %v", raw, err)
		}
	}
}

func TestRemoteFor(t *testing.T) {
	https, _ := url.Parse("https://example.com/r.git")
	plain, _ := url.Parse("http://example.com/r.git")
	file, _ := url.Parse("file:///srv/r.git")
	sshURL, _ := url.Parse("ssh://git@example.com/r.git")
	b := func(s string) []byte { return []byte(s) }
	for _, tc := range []struct {
		name    string
		u       *url.URL
		data    map[string][]byte
		want    remote
		wantErr string
	}{
		{"no secret", https, nil, remote{URL: https.String()}, ""},
		{"basic", https, map[string][]byte{"username": b("u"), "password": b("p")},
			remote{URL: https.String(), Auth: &githttp.BasicAuth{Username: "u", Password: "p"}}, ""},
		{"bearer", https, map[string][]byte{"bearerToken": b("tok\n")},
			remote{URL: https.String(), Auth: &githttp.TokenAuth{Token: "tok"}}, ""},
		{"basic and ca", https, map[string][]byte{"username": b("u"), "password": b("p"), "ca.crt": b("PEM")},
			remote{URL: https.String(), Auth: &githttp.BasicAuth{Username: "u", Password: "p"}, CABundle: b("PEM")}, ""},
		{"ca only", https, map[string][]byte{"ca.crt": b("PEM")}, remote{URL: https.String(), CABundle: b("PEM")}, ""},
		{"file ignores secret", file, map[string][]byte{"identity": b("k")}, remote{URL: file.String()}, ""},
		{"both kinds", https, map[string][]byte{"username": b("u"), "password": b("p"), "bearerToken": b("t")}, remote{}, "keep one"},
		{"username alone", https, map[string][]byte{"username": b("u")}, remote{}, "both username and password"},
		{"ca on http", plain, map[string][]byte{"ca.crt": b("PEM")}, remote{}, "not https"},
		{"ssh keys on https", https, map[string][]byte{"identity": b("k"), "known_hosts": b("h")}, remote{}, "identity and known_hosts, which are for ssh:// URLs"},
		{"ssh without secret", sshURL, nil, remote{}, "need spec.secretRef"},
		{"ssh without known_hosts", sshURL, map[string][]byte{"identity": b("k")}, remote{}, "no known_hosts"},
		{"ssh without identity", sshURL, map[string][]byte{"known_hosts": b("h")}, remote{}, "no identity"},
		{"ssh bad key", sshURL, map[string][]byte{"identity": b("k"), "known_hosts": b("h")}, remote{}, "parsing identity"},
		{"ssh password only", sshURL, map[string][]byte{"username": b("u"), "password": b("p")}, remote{}, "need the keys identity"},
		{"nothing usable", https, map[string][]byte{"token": b("t")}, remote{}, "keys: token"},
		{"empty secret", https, map[string][]byte{}, remote{}, "secret has none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := remoteFor(tc.u, tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatal(diff)
			}
		})
	}
}

func TestIgnore(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		".git/config":        "x",
		"deploy/app.yaml":    "a",
		"deploy/secret.enc":  "s",
		"docs/readme.md":     "d",
		"docs/keep.yaml":     "k",
		"tmp/scratch":        "t",
		"nested/.git/HEAD":   "h",
		"README.md":          "r",
		SourceIgnoreFile:     "# comment\r\n\ndocs/\n*.enc\n",
		"charts/x/values.md": "v",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	spec := "tmp\n*.md\n!README.md\n"
	skip, err := ignoreMatcher(dir, &spec)
	if err != nil {
		t.Fatal(err)
	}
	files, err := artifact.ReadDir(dir, skip)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for name := range files {
		got = append(got, name)
	}
	sort.Strings(got)
	want := []string{SourceIgnoreFile, "README.md", "deploy/app.yaml"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatal(diff)
	}

	// Without .sourceignore or spec.ignore only .git goes.
	skip, _ = ignoreMatcher(t.TempDir(), nil)
	if !skip(".git", true) || skip("docs", true) || skip("a.enc", false) {
		t.Fatal("default matcher skips the wrong things")
	}
}

func TestPickTag(t *testing.T) {
	tags := []string{"v1.0.0", "1.0.0", "v1.2.0", "v1.10.0", "v2.0.0-rc.1", "v2.0.0", "latest", "v3.0.0-beta"}
	for rng, want := range map[string]string{
		"~1.0":             "v1.0.0",
		"^1":               "v1.10.0",
		">=1":              "v2.0.0",
		"1.2.x":            "v1.2.0",
		">=2.0.0-0 <2.0.0": "v2.0.0-rc.1",
		">=4":              "",
	} {
		c, err := semver.NewConstraint(rng)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := pickTag(tags, c)
		if got != want || ok != (want != "") {
			t.Errorf("pickTag(%q) = %q %v, want %q", rng, got, ok, want)
		}
	}
}

func TestNextArtifact(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	size := int64(10)
	prev := &meta.Artifact{URL: "http://old/a", Revision: "main@sha1:1", Digest: "sha256:a", Size: &size, LastUpdateTime: t0}
	for _, tc := range []struct {
		name  string
		prev  *meta.Artifact
		f     fetched
		want  *meta.Artifact
		isNew bool
	}{
		{"first", nil, fetched{Revision: "main@sha1:1", Digest: "sha256:a", Size: 10, URL: "http://hub/a"},
			&meta.Artifact{URL: "http://hub/a", Revision: "main@sha1:1", Digest: "sha256:a", Size: &size, LastUpdateTime: t1}, true},
		{"unchanged keeps time, refreshes URL", prev, fetched{Revision: "main@sha1:1", Digest: "sha256:a", Size: 10, URL: "http://hub/a"},
			&meta.Artifact{URL: "http://hub/a", Revision: "main@sha1:1", Digest: "sha256:a", Size: &size, LastUpdateTime: t0}, false},
		{"new revision", prev, fetched{Revision: "main@sha1:2", Digest: "sha256:a", Size: 10, URL: "http://old/a"},
			&meta.Artifact{URL: "http://old/a", Revision: "main@sha1:2", Digest: "sha256:a", Size: &size, LastUpdateTime: t1}, true},
		{"new content", prev, fetched{Revision: "main@sha1:1", Digest: "sha256:b", Size: 10, URL: "http://old/b"},
			&meta.Artifact{URL: "http://old/b", Revision: "main@sha1:1", Digest: "sha256:b", Size: &size, LastUpdateTime: t1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, isNew := nextArtifact(tc.prev, tc.f, t1)
			if isNew != tc.isNew {
				t.Errorf("isNew %v", isNew)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Error(diff)
			}
		})
	}
	if prev.URL != "http://old/a" {
		t.Fatal("nextArtifact changed its input")
	}
}

func TestReconcileRequestedPredicate(t *testing.T) {
	obj := func(v string) *sourcev1.GitRepository {
		o := &sourcev1.GitRepository{}
		if v != "" {
			o.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: v}
		}
		return o
	}
	p := ReconcileRequestedPredicate{}
	for _, tc := range []struct {
		old, new string
		want     bool
	}{
		{"", "", false}, {"", "1", true}, {"1", "1", false}, {"1", "2", true}, {"1", "", false},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: obj(tc.old), ObjectNew: obj(tc.new)}); got != tc.want {
			t.Errorf("%q -> %q: %v", tc.old, tc.new, got)
		}
	}
}
