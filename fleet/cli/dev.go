package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flotilla-dev/flotilla/fleet/devenv"
)

// Files `flotilla dev up` writes in its folder, next to the kubeconfigs.
const (
	readyFile = "ready" // exists while the fleet is up
	pidFile   = "pid"   // the PID of the dev up process, for dev down
)

func newDevCommand(g *globals) *cobra.Command {
	dev := &cobra.Command{
		Use:   "dev",
		Short: "Run a local fleet on this machine, without containers",
	}
	dev.AddCommand(newDevUpCommand(g), newDevDownCommand(g))
	return dev
}

type devUpOptions struct {
	clusters     int
	dir          string
	verbosity    int
	controlPlane bool
}

func newDevUpCommand(g *globals) *cobra.Command {
	o := devUpOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a hub and N spoke clusters with their agents, until interrupted",
		Long: `Start, on this machine and without containers, a hub control plane with the hub
running on it and N spoke control planes named spoke-1…spoke-N, each with an agent
registered to the hub. It writes DIR/hub.kubeconfig and DIR/clusters/<name>.kubeconfig,
then creates DIR/ready, and runs until SIGINT or SIGTERM (or flotilla dev down).

It needs the control-plane binaries that ` + "`make control-plane`" + ` builds.`,
		Example: `  flotilla dev up --clusters 3 --dir .dev/fleet &
  while [ ! -e .dev/fleet/ready ]; do sleep 1; done
  flotilla --kubeconfig .dev/fleet/hub.kubeconfig status
  flotilla dev down --dir .dev/fleet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return devUp(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	f.IntVar(&o.clusters, "clusters", 2, "number of spoke clusters")
	f.StringVar(&o.dir, "dir", ".dev/fleet", "folder for the kubeconfigs and the fleet's state")
	f.IntVarP(&o.verbosity, "verbosity", "v", 0, "log verbosity (0: concise)")
	f.BoolVar(&o.controlPlane, "control-plane-logs", false, "also log etcd and kube-apiserver output")
	return cmd
}

func devUp(ctx context.Context, g *globals, o devUpOptions) error {
	if o.clusters < 0 {
		return fmt.Errorf("--clusters must not be negative")
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if pid, err := readPid(dir); err == nil && pid != os.Getpid() && processRunning(pid) {
		return fmt.Errorf("a fleet already runs in %s (pid %d): stop it with `flotilla dev down --dir %s`", o.dir, pid, o.dir)
	}
	binaries, err := controlplane.FindBinaries()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := removeStale(dir); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer removeIfOurs(filepath.Join(dir, pidFile))

	log := controlplane.NewLogger(g.errOut, o.verbosity)
	ctrllog.SetLogger(log)
	klog.SetLogger(log.WithName("client-go"))
	var cpOut io.Writer
	if o.controlPlane {
		cpOut = g.errOut
	}
	log.Info("starting fleet", "clusters", o.clusters, "dir", dir, "binaries", binaries)
	began := time.Now()
	f, err := devenv.Start(ctx, devenv.Options{
		Spokes:             o.clusters,
		Dir:                dir,
		BinaryDir:          binaries,
		Log:                log,
		ControlPlaneOutput: cpOut,
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted while starting: %w", err)
		}
		return fmt.Errorf("start fleet: %w", err)
	}
	// Removed before anything stops, so that no one uses a fleet that is going away.
	defer os.Remove(filepath.Join(dir, readyFile))
	if err := os.WriteFile(filepath.Join(dir, readyFile), []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return errors.Join(err, f.Stop())
	}

	wd, _ := os.Getwd()
	rel := func(p string) string { // shorter to read and to paste
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	fmt.Fprintf(g.errOut, "\nFleet ready in %s: a hub and %d spoke(s).\n", time.Since(began).Round(100*time.Millisecond), o.clusters)
	fmt.Fprintf(g.errOut, "  hub       %s\n", rel(f.HubKubeconfig()))
	for _, s := range f.Spokes() {
		fmt.Fprintf(g.errOut, "  %-9s %s\n", s, rel(f.Kubeconfig(s)))
	}
	fmt.Fprintf(g.errOut, "Tenants' sources and Providers may reach loopback and private networks here (flotilla-hub --tenant-egress-allow=%s); a real hub refuses them by default.\n", prefixList(devenv.DefaultTenantEgressAllow))
	fmt.Fprintf(g.errOut, "Try:  flotilla --kubeconfig %s status\nStop: Ctrl-C, or flotilla dev down --dir %s\n\n", rel(f.HubKubeconfig()), o.dir)

	var hubErr error
	select {
	case <-ctx.Done():
		log.Info("stopping fleet (a second signal stops at once, but may leave etcd and kube-apiserver processes behind)")
	case <-f.HubInstance().Done():
		hubErr = fmt.Errorf("the hub stopped: %v", f.HubInstance().Err())
		log.Error(hubErr, "stopping fleet")
	}
	os.Remove(filepath.Join(dir, readyFile))
	if err := f.Stop(); err != nil {
		return errors.Join(hubErr, fmt.Errorf("stop fleet: %w", err))
	}
	return hubErr
}

func prefixList(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

func newDevDownCommand(g *globals) *cobra.Command {
	var (
		dir     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the fleet that flotilla dev up runs in --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return devDown(cmd.Context(), g, dir, timeout)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".dev/fleet", "the folder given to flotilla dev up")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for it to stop")
	return cmd
}

func devDown(ctx context.Context, g *globals, dir string, timeout time.Duration) error {
	pid, err := readPid(dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(g.errOut, "No fleet runs in %s.\n", dir)
		return nil
	}
	if err != nil {
		return err
	}
	if !processRunning(pid) {
		os.Remove(filepath.Join(dir, pidFile))
		os.Remove(filepath.Join(dir, readyFile))
		fmt.Fprintf(g.errOut, "No fleet runs in %s (pid %d is gone; removed its files).\n", dir, pid)
		return nil
	}
	if !isFlotilla(pid) {
		return fmt.Errorf("pid %d in %s is not a flotilla process: remove that file if no fleet runs", pid, filepath.Join(dir, pidFile))
	}
	if err := terminate(pid); err != nil {
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	fmt.Fprintf(g.errOut, "Stopping the fleet in %s (pid %d)…\n", dir, pid)
	deadline := time.Now().Add(timeout)
	for processRunning(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the fleet in %s (pid %d) did not stop within %s: its log may say why; `kill -9 %d` ends it, but may leave etcd and kube-apiserver processes behind", dir, pid, timeout, pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(g.errOut, "Stopped.\n")
	return nil
}

// removeStale removes what a previous dev up left in dir: it belongs to control planes
// that are gone. Only files dev up writes are touched, since dir may be the user's.
func removeStale(dir string) error {
	stale := []string{filepath.Join(dir, readyFile), filepath.Join(dir, "hub.kubeconfig")}
	kubeconfigs, _ := filepath.Glob(filepath.Join(dir, "clusters", "*.kubeconfig"))
	stale = append(stale, kubeconfigs...)
	if _, err := readPid(dir); err == nil {
		stale = append(stale, filepath.Join(dir, "agents"), filepath.Join(dir, "artifacts"))
	}
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

func readPid(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s does not hold a PID: %q", filepath.Join(dir, pidFile), b)
	}
	return pid, nil
}

// removeIfOurs removes the pid file unless another dev up has written its own since.
func removeIfOurs(path string) {
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}
