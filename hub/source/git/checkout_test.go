package git

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestCheckoutRefs(t *testing.T) {
	t.Parallel()
	srv := gitserver.New(t)
	repo := srv.CreateRepo("refs")
	first := repo.Write(map[string]string{"v": "1"})
	repo.Tag("v1.0.0")
	repo.PushRef("refs/pull/1/head")
	second := repo.Write(map[string]string{"v": "2"})
	repo.Tag("v1.1.0")
	repo.AnnotatedTag("annotated")
	repo.Branch("release")
	third := repo.Write(map[string]string{"v": "3"})
	repo.Tag("v2.0.0")
	repo.Tag("not-a-version")

	for _, tc := range []struct {
		name     string
		url      string
		ref      *sourcev1.GitRepositoryRef
		revision string
		content  string
	}{
		{"default branch", repo.URL(), nil, "main@sha1:" + third, "3"},
		{"empty ref", repo.URL(), &sourcev1.GitRepositoryRef{}, "main@sha1:" + third, "3"},
		{"branch", repo.URL(), &sourcev1.GitRepositoryRef{Branch: "release"}, "release@sha1:" + second, "2"},
		{"tag", repo.URL(), &sourcev1.GitRepositoryRef{Tag: "v1.0.0"}, "v1.0.0@sha1:" + first, "1"},
		{"commit", repo.URL(), &sourcev1.GitRepositoryRef{Commit: first}, "sha1:" + first, "1"},
		{"commit on branch", repo.URL(), &sourcev1.GitRepositoryRef{Branch: "main", Commit: second}, "main@sha1:" + second, "2"},
		{"semver", repo.URL(), &sourcev1.GitRepositoryRef{SemVer: "~1"}, "v1.1.0@sha1:" + second, "2"},
		{"semver newest", repo.URL(), &sourcev1.GitRepositoryRef{SemVer: ">=1.0.0"}, "v2.0.0@sha1:" + third, "3"},
		{"name: branch", repo.URL(), &sourcev1.GitRepositoryRef{Name: "refs/heads/release"}, "refs/heads/release@sha1:" + second, "2"},
		{"name: pull request head", repo.URL(), &sourcev1.GitRepositoryRef{Name: "refs/pull/1/head"}, "refs/pull/1/head@sha1:" + first, "1"},
		{"name: tag", repo.URL(), &sourcev1.GitRepositoryRef{Name: "refs/tags/v1.0.0"}, "refs/tags/v1.0.0@sha1:" + first, "1"},
		{"name: annotated tag peeled", repo.URL(), &sourcev1.GitRepositoryRef{Name: "refs/tags/annotated"}, "refs/tags/annotated@sha1:" + second, "2"},
		// Precedence as in Flux: commit > name > semver > tag > branch.
		{"name wins over branch", repo.URL(), &sourcev1.GitRepositoryRef{Branch: "main", Name: "refs/pull/1/head"}, "refs/pull/1/head@sha1:" + first, "1"},
		{"name wins over tag", repo.URL(), &sourcev1.GitRepositoryRef{Tag: "v2.0.0", Name: "refs/heads/release"}, "refs/heads/release@sha1:" + second, "2"},
		{"name wins over semver", repo.URL(), &sourcev1.GitRepositoryRef{SemVer: ">=2", Name: "refs/tags/v1.0.0"}, "refs/tags/v1.0.0@sha1:" + first, "1"},
		{"commit wins over name", repo.URL(), &sourcev1.GitRepositoryRef{Commit: third, Name: "refs/pull/1/head"}, "sha1:" + third, "3"},
		{"name over file url", "file://" + repo.Path(), &sourcev1.GitRepositoryRef{Name: "refs/pull/1/head"}, "refs/pull/1/head@sha1:" + first, "1"},
		{"file url", "file://" + repo.Path(), &sourcev1.GitRepositoryRef{Branch: "main"}, "main@sha1:" + third, "3"},
		{"file url tag", "file://" + repo.Path(), &sourcev1.GitRepositoryRef{Tag: "v1.1.0"}, "v1.1.0@sha1:" + second, "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rev, err := checkout(ctx(t), dir, remote{URL: tc.url}, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if rev != tc.revision {
				t.Errorf("revision %s, want %s", rev, tc.revision)
			}
			if got := readFile(t, dir, "v"); got != tc.content {
				t.Errorf("content %q, want %q", got, tc.content)
			}
		})
	}
}

func TestCheckoutErrors(t *testing.T) {
	t.Parallel()
	srv := gitserver.New(t, gitserver.WithBasicAuth("git", "right"))
	repo := srv.CreateRepo("private")
	repo.Write(map[string]string{"a": "b"})
	repo.Tag("v1.0.0")
	good := &githttp.BasicAuth{Username: "git", Password: "right"}

	for _, tc := range []struct {
		name string
		rm   remote
		ref  *sourcev1.GitRepositoryRef
		want string
		is   error
	}{
		{"no credentials", remote{URL: repo.URL()}, nil, "authentication required", nil},
		{"wrong password", remote{URL: repo.URL(), Auth: &githttp.BasicAuth{Username: "git", Password: "wrong"}}, nil, "authentication required", nil},
		{"missing branch", remote{URL: repo.URL(), Auth: good}, &sourcev1.GitRepositoryRef{Branch: "nope"}, `couldn't find remote ref "refs/heads/nope"`, nil},
		{"missing tag", remote{URL: repo.URL(), Auth: good}, &sourcev1.GitRepositoryRef{Tag: "v9"}, `couldn't find remote ref "refs/tags/v9"`, nil},
		{"missing commit", remote{URL: repo.URL(), Auth: good}, &sourcev1.GitRepositoryRef{Commit: strings.Repeat("a", 40)}, "not found", nil},
		{"missing ref name", remote{URL: repo.URL(), Auth: good}, &sourcev1.GitRepositoryRef{Name: "refs/pull/9/head"}, "the remote has no such reference", nil},
		{"ref name, wrong password", remote{URL: repo.URL(), Auth: &githttp.BasicAuth{Username: "git", Password: "wrong"}}, &sourcev1.GitRepositoryRef{Name: "refs/heads/main"}, "authentication required", nil},
		{"no matching tag", remote{URL: repo.URL(), Auth: good}, &sourcev1.GitRepositoryRef{SemVer: ">=2"}, "no tag matches", errNoMatchingTag},
		{"bad range", remote{URL: repo.URL(), Auth: good}, &sourcev1.GitRepositoryRef{SemVer: "not a range"}, "invalid semver range", nil},
		{"no repository", remote{URL: srv.URL() + "/missing.git", Auth: good}, nil, "repository not found", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkout(ctx(t), t.TempDir(), tc.rm, tc.ref)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestCheckoutTLSWithCABundle(t *testing.T) {
	t.Parallel()
	srv := gitserver.New(t, gitserver.WithTLS())
	repo := srv.CreateRepo("tls")
	sha := repo.Write(map[string]string{"a": "b"})
	if _, err := checkout(ctx(t), t.TempDir(), remote{URL: repo.URL()}, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a certificate error without the CA, got %v", err)
	}
	rev, err := checkout(ctx(t), t.TempDir(), remote{URL: repo.URL(), CABundle: srv.CACert()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rev != "main@sha1:"+sha {
		t.Fatalf("revision %s", rev)
	}
}
