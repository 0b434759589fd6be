package git

import (
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	https, _ := url.Parse("https://example.com/r.git")
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
		// What a Secret may hold and in which combinations is hub/source/credentials'
		// (TestParse); here only that its verdict comes through.
		{"username alone", https, map[string][]byte{"username": b("u")}, remote{}, "both username and password"},
		{"ssh without secret", sshURL, nil, remote{}, "need spec.secretRef"},
		{"ssh bad key", sshURL, map[string][]byte{"identity": b("k"), "known_hosts": b("h")}, remote{}, "parsing identity"},
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
	t.Parallel()
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
