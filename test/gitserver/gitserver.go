package gitserver

import (
	"bytes"
	"crypto/subtle"
	"encoding/pem"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// DefaultBranch is the branch every new repository starts on.
const DefaultBranch = "main"

// Server serves the bare repositories below one folder over smart HTTP.
type Server struct {
	t    testing.TB
	root string
	home string
	srv  *httptest.Server
	user string
	pass string
	tls  bool
}

// Option configures a Server.
type Option func(*Server)

// WithBasicAuth makes the server refuse every request without these credentials.
func WithBasicAuth(user, pass string) Option {
	return func(s *Server) { s.user, s.pass = user, pass }
}

// WithTLS serves https with a certificate of the test's own; CACert returns it.
func WithTLS() Option {
	return func(s *Server) { s.tls = true }
}

// New starts a server that stops when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("gitserver needs the git command: %v", err)
	}
	s := &Server{t: t, root: t.TempDir(), home: t.TempDir()}
	for _, o := range opts {
		o(s)
	}
	backend := &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Dir:  s.root,
		Env: append(isolatedEnv(s.home),
			"GIT_PROJECT_ROOT="+s.root,
			"GIT_HTTP_EXPORT_ALL=1",
		),
		Stderr: testLog{t},
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.user != "" || s.pass != "" {
			u, p, ok := r.BasicAuth()
			if !ok || !equal(u, s.user) || !equal(p, s.pass) {
				w.Header().Set("WWW-Authenticate", `Basic realm="gitserver"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	s.srv.Config.ErrorLog = log.New(testLog{t}, "", 0)
	if s.tls {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	t.Cleanup(s.srv.Close)
	return s
}

// testLog sends the server's complaints to the test log, which shows them on failure.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("gitserver: %s", bytes.TrimSpace(p))
	return len(p), nil
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// URL is the server's base address.
func (s *Server) URL() string { return s.srv.URL }

// CACert returns the PEM certificate clients must trust to reach a WithTLS server.
func (s *Server) CACert() []byte {
	if !s.tls {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Root is the folder holding the bare repositories.
func (s *Server) Root() string { return s.root }

// Repo is one bare repository on the server and a working clone that pushes to it.
type Repo struct {
	s    *Server
	name string
	bare string
	work string
	mu   sync.Mutex
}

// CreateRepo makes an empty bare repository whose default branch is main, and a
// working clone to commit from. The name gets a .git suffix when it has none.
func (s *Server) CreateRepo(name string) *Repo {
	s.t.Helper()
	if !strings.HasSuffix(name, ".git") {
		name += ".git"
	}
	r := &Repo{s: s, name: name, bare: filepath.Join(s.root, name), work: s.t.TempDir()}
	r.git(s.root, "init", "--quiet", "--bare", "--initial-branch="+DefaultBranch, r.bare)
	r.git(r.work, "init", "--quiet", "--initial-branch="+DefaultBranch)
	r.git(r.work, "remote", "add", "origin", r.bare)
	return r
}

// URL is the repository's HTTP address.
func (r *Repo) URL() string { return r.s.URL() + "/" + r.name }

// Path is the bare repository's folder, for file:// URLs.
func (r *Repo) Path() string { return r.bare }

// Write writes files (slash-separated paths relative to the repository root), commits
// everything and pushes; it returns the new commit's SHA-1. A commit is made even when
// nothing changed.
func (r *Repo) Write(files map[string]string) string {
	r.s.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.s.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.s.t.Fatal(err)
		}
	}
	r.git(r.work, "add", "--all")
	return r.commitAndPush("write files")
}

// Remove deletes paths from the repository, commits and pushes; it returns the SHA-1.
func (r *Repo) Remove(paths ...string) string {
	r.s.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.git(r.work, append([]string{"rm", "-r", "--quiet", "--"}, paths...)...)
	return r.commitAndPush("remove " + strings.Join(paths, " "))
}

// Tag puts a lightweight tag on the latest commit and pushes it.
func (r *Repo) Tag(name string) {
	r.s.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.git(r.work, "tag", name)
	r.git(r.work, "push", "--quiet", "origin", "refs/tags/"+name)
}

// Branch points branch name at the latest commit and pushes it.
func (r *Repo) Branch(name string) {
	r.s.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.git(r.work, "push", "--quiet", "--force", "origin", "HEAD:refs/heads/"+name)
}

// AnnotatedTag puts an annotated tag (a tag object, not just a name) on the latest
// commit and pushes it.
func (r *Repo) AnnotatedTag(name string) {
	r.s.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.git(r.work, "tag", "--annotate", "--message", "tag "+name, name)
	r.git(r.work, "push", "--quiet", "origin", "refs/tags/"+name)
}

// PushRef points the full reference name (refs/pull/1/head, say) at the latest
// commit on the server, as a forge does for pull requests.
func (r *Repo) PushRef(name string) {
	r.s.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.git(r.work, "push", "--quiet", "--force", "origin", "HEAD:"+name)
}

// Head returns the SHA-1 of the latest commit on main.
func (r *Repo) Head() string {
	r.s.t.Helper()
	return r.git(r.work, "rev-parse", "HEAD")
}

func (r *Repo) commitAndPush(msg string) string {
	r.git(r.work, "commit", "--quiet", "--allow-empty", "-m", msg)
	r.git(r.work, "push", "--quiet", "origin", "HEAD:refs/heads/"+DefaultBranch)
	return r.git(r.work, "rev-parse", "HEAD")
}

func (r *Repo) git(dir string, args ...string) string {
	r.s.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = isolatedEnv(r.s.home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.s.t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// isolatedEnv keeps git away from the user's and the system's configuration, so that
// identity, signing and hooks are the same on every machine.
func isolatedEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Flotilla Test",
		"GIT_AUTHOR_EMAIL=test@flotilla.invalid",
		"GIT_COMMITTER_NAME=Flotilla Test",
		"GIT_COMMITTER_EMAIL=test@flotilla.invalid",
	}
}
