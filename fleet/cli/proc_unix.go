//go:build unix

package cli

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// processRunning reports whether pid is a live process; a zombie, which has exited
// and waits for its parent, does not count.
func processRunning(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		// The state follows the command name, which is in parentheses.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// isFlotilla guards against a PID reused by another program since dev up wrote it.
// Without /proc it cannot tell, and trusts the file.
func isFlotilla(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return true
	}
	return strings.Contains(string(b), "flotilla")
}

func terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }
