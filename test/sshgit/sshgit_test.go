package sshgit_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/sshgit"
)

// TestCloneWithGit clones with the real git client over ssh, so the fixture speaks
// what real clients speak.
func TestCloneWithGit(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	gs := gitserver.New(t)
	repo := gs.CreateRepo("fleet")
	head := repo.Write(map[string]string{"a.yaml": "a: 1\n"})

	srv := sshgit.New(t, gs.Root())
	key, pub := sshgit.NewClientKey(t)
	srv.Authorize(pub)

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	khFile := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(khFile, []byte(srv.KnownHosts()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "clone", "--quiet", srv.URL("fleet"), filepath.Join(dir, "clone"))
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_SSH_COMMAND=ssh -F /dev/null -i " + keyFile + " -o IdentitiesOnly=yes -o UserKnownHostsFile=" + khFile + " -o StrictHostKeyChecking=yes",
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	out, err := exec.Command("git", "-C", filepath.Join(dir, "clone"), "rev-parse", "HEAD").Output()
	if err != nil || strings.TrimSpace(string(out)) != head {
		t.Fatalf("HEAD %q (%v), want %s", out, err, head)
	}
}
