package env

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
)

var (
	binariesOnce sync.Once
	binariesDir  string
	binariesErr  error
)

// Binaries returns the folder of the control-plane binaries. When none is configured
// and the cache is empty, it runs hack/control-plane.sh once (a few minutes the first
// time on a fresh machine), so that tests never skip for want of binaries.
func Binaries(t testing.TB) string {
	t.Helper()
	binariesOnce.Do(func() { binariesDir, binariesErr = ensureBinaries() })
	if binariesErr != nil {
		t.Fatalf("control-plane binaries: %v", binariesErr)
	}
	return binariesDir
}

func ensureBinaries() (string, error) {
	dir, err := controlplane.FindBinaries()
	if err == nil {
		return dir, nil
	}
	// A folder named explicitly but wrong is the caller's mistake; building would hide it.
	if os.Getenv(controlplane.ControlPlaneEnv) != "" || os.Getenv(controlplane.KubebuilderEnv) != "" {
		return "", err
	}
	root, rootErr := controlplane.RepoRoot()
	if rootErr != nil {
		return "", errors.Join(err, rootErr)
	}
	// Test binaries of several packages run at once; one builds, the others wait.
	if err := os.MkdirAll(filepath.Join(root, ".cache"), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(root, ".cache", "control-plane.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
	if dir, err := controlplane.FindBinaries(); err == nil {
		return dir, nil
	}
	fmt.Fprintln(os.Stderr, "test/env: control-plane binaries missing, running hack/control-plane.sh (the first time takes a few minutes)")
	var out bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "hack", "control-plane.sh"))
	cmd.Dir = root
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/control-plane.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir = strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return controlplane.FindBinaries()
	}
	return dir, nil
}
