package gitserver_test

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/test/gitserver"
)

func clone(t *testing.T, u string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("git", "clone", "--quiet", u, dir)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return dir, nil
}

func TestServeWithBasicAuth(t *testing.T) {
	s := gitserver.New(t, gitserver.WithBasicAuth("alice", "s3cret"))
	r := s.CreateRepo("demo")
	sha := r.Write(map[string]string{"a.txt": "one", "dir/b.txt": "two"})
	if len(sha) != 40 || sha != r.Head() {
		t.Fatalf("Write returned %q, head %q", sha, r.Head())
	}
	r.Tag("v1.0.0")
	sha2 := r.Remove("a.txt")
	if sha2 == sha {
		t.Fatal("Remove made no new commit")
	}

	if _, err := clone(t, r.URL()); err == nil {
		t.Fatal("clone without credentials succeeded")
	}
	u, _ := url.Parse(r.URL())
	u.User = url.UserPassword("alice", "wrong")
	if _, err := clone(t, u.String()); err == nil {
		t.Fatal("clone with a wrong password succeeded")
	}
	u.User = url.UserPassword("alice", "s3cret")
	dir, err := clone(t, u.String())
	if err != nil {
		t.Fatalf("clone: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "dir", "b.txt")); err != nil || string(b) != "two" {
		t.Fatalf("b.txt = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.txt")); !os.IsNotExist(err) {
		t.Fatalf("removed file is still there: %v", err)
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "v1.0.0", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(out)); got[0] != sha || got[1] != sha2 {
		t.Fatalf("tag and head = %v, want %s %s", got, sha, sha2)
	}
}

func TestServeWithoutAuth(t *testing.T) {
	s := gitserver.New(t)
	r := s.CreateRepo("open.git")
	r.Write(map[string]string{"x": "y"})
	if _, err := clone(t, r.URL()); err != nil {
		t.Fatalf("clone: %v", err)
	}
	if _, err := clone(t, "file://"+r.Path()); err != nil {
		t.Fatalf("clone over file://: %v", err)
	}
}
