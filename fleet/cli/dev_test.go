package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/flotilla-dev/flotilla/test/env"
)

// TestDevUp runs dev up in-process with one spoke and checks the files the contract
// names: kubeconfigs and pid while it runs, then ready; none of ready and pid after.
func TestDevUp(t *testing.T) {
	t.Setenv("FLOTILLA_CONTROL_PLANE", env.Binaries(t))
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log bytes.Buffer
	g := &globals{out: &log, errOut: &log}
	done := make(chan error, 1)
	go func() { done <- devUp(ctx, g, devUpOptions{clusters: 1, dir: dir}) }()

	env.EventuallyWithin(t, 3*time.Minute, "dev up to create ready", func() error {
		select {
		case err := <-done:
			t.Fatalf("dev up returned early: %v\n%s", err, log.String())
		default:
		}
		_, err := os.Stat(filepath.Join(dir, readyFile))
		return err
	})
	for _, kc := range []string{"hub.kubeconfig", "clusters/spoke-1.kubeconfig"} {
		if _, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, kc)); err != nil {
			t.Errorf("%s: %v", kc, err)
		}
	}
	if pid, err := readPid(dir); err != nil || pid != os.Getpid() {
		t.Errorf("pid file: %d, %v", pid, err)
	}
	out, _, err := run(t, filepath.Join(dir, "hub.kubeconfig"), "get", "clusters")
	if err != nil || !strings.Contains(out, "spoke-1") {
		t.Errorf("get clusters: %v\n%s", err, out)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev up: %v\n%s", err, log.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("dev up did not stop within a minute")
	}
	for _, f := range []string{readyFile, pidFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s still there after stop: %v", f, err)
		}
	}
}

func TestDevUpWithoutBinaries(t *testing.T) {
	t.Setenv("FLOTILLA_CONTROL_PLANE", t.TempDir())
	var log bytes.Buffer
	err := devUp(context.Background(), &globals{out: &log, errOut: &log}, devUpOptions{clusters: 1, dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make control-plane") {
		t.Errorf("got %v, want an error naming make control-plane", err)
	}
}

// TestDevDown stops a stand-in process whose command line says flotilla; dev up
// refuses the folder while it runs.
func TestDevDown(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("bash", "-c", "exec -a flotilla-dev-up sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	env.Eventually(t, "the stand-in to exec", func() error {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline")
		if err == nil && !bytes.Contains(b, []byte("flotilla")) {
			return os.ErrNotExist
		}
		return err
	})
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := devUp(context.Background(), &globals{out: &log, errOut: &log}, devUpOptions{dir: dir}); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("dev up on a folder in use: %v", err)
	}
	if err := devDown(context.Background(), &globals{out: &log, errOut: &log}, dir, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if processRunning(cmd.Process.Pid) {
		t.Error("still running after dev down")
	}

	// A PID that is not flotilla's is left alone.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(other.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := devDown(context.Background(), &globals{out: &log, errOut: &log}, dir, time.Second); err == nil || !strings.Contains(err.Error(), "not a flotilla process") {
		t.Errorf("got %v", err)
	}
}
