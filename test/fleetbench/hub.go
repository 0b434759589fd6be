package fleetbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/test/env"
)

// hubRun is a running hub: in this process, or the flotilla-hub binary in its own
// process so that its memory and CPU can be read apart from the simulated clusters.
type hubRun struct {
	pid        int // 0 when in-process
	metricsURL string
	pprofURL   string // "" when not served
}

// startHub starts the hub on cp and stops it when the test ends.
func startHub(t testing.TB, cp *controlplane.ControlPlane, binary, dir string) *hubRun {
	t.Helper()
	metricsAddr, pprofAddr := freeAddr(t), freeAddr(t)
	storage := filepath.Join(dir, "artifacts")
	if binary == "" {
		ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), env.Log()))
		h, err := manager.Start(ctx, manager.Options{
			Config: cp.Config(), StorageDir: storage, ArtifactAddr: "127.0.0.1:0",
			MetricsAddr: metricsAddr, MetricsInsecure: true, HealthAddr: "0",
		})
		if err != nil {
			cancel()
			t.Fatalf("start hub: %v", err)
		}
		t.Cleanup(func() { cancel(); <-h.Done() })
		return &hubRun{metricsURL: "http://" + metricsAddr + "/metrics"}
	}
	kubeconfig := filepath.Join(dir, "hub.kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "hub.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--storage-dir", storage,
		"--artifact-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--metrics-addr", metricsAddr, "--metrics-insecure",
		"--health-addr", "0", "--pprof-addr", pprofAddr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	return &hubRun{pid: cmd.Process.Pid, metricsURL: "http://" + metricsAddr + "/metrics", pprofURL: "http://" + pprofAddr + "/debug/pprof"}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func freeAddr(t testing.TB) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
