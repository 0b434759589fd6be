//go:build fleetbench

package fleetbench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
)

// TestBenchFleet is make bench-fleet: the hub binary with 10, 100 and 1,000
// simulated clusters (FLOTILLA_BENCH_CLUSTERS, comma-separated) and 10 deployments
// each (FLOTILLA_BENCH_DEPLOYMENTS). FLOTILLA_BENCH_HUB=inprocess runs the hub in
// this process, a path runs that hub binary; FLOTILLA_BENCH_OUT receives the hub's CPU and heap profiles;
// FLOTILLA_BENCH_APISERVER_GOGC sets the control plane's GOGC (Options.APIServerGOGC).
func TestBenchFleet(t *testing.T) {
	sizes := []int{10, 100, 1000}
	if v := os.Getenv("FLOTILLA_BENCH_CLUSTERS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("FLOTILLA_BENCH_CLUSTERS: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	deployments := 10
	if v := os.Getenv("FLOTILLA_BENCH_DEPLOYMENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("FLOTILLA_BENCH_DEPLOYMENTS: %v", err)
		}
		deployments = n
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	hub := filepath.Join(root, "bin", "flotilla-hub")
	switch v := os.Getenv("FLOTILLA_BENCH_HUB"); v {
	case "inprocess":
		hub = ""
	case "":
	default:
		hub = v
	}
	if hub != "" {
		if _, err := os.Stat(hub); err != nil {
			t.Fatalf("%v (run make build)", err)
		}
	}
	out := os.Getenv("FLOTILLA_BENCH_OUT")
	if out == "" {
		out = filepath.Join(root, ".cache", "bench-fleet")
	}
	var results []Result
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			began := time.Now()
			r := Run(t, Options{Clusters: n, Deployments: deployments, HubBinary: hub, ProfileDir: out,
				APIServerGOGC: os.Getenv("FLOTILLA_BENCH_APISERVER_GOGC"), Timeout: 20 * time.Minute})
			results = append(results, r)
			t.Logf("%d clusters done in %s", n, time.Since(began).Round(time.Second))
		})
	}
	load, _ := os.ReadFile("/proc/loadavg")
	gc := ""
	if v := os.Getenv("FLOTILLA_BENCH_APISERVER_GOGC"); v != "" {
		gc = "; control plane GOGC=" + v
	}
	fmt.Printf("\nmake bench-fleet (%d deployments per cluster%s; load average %s)\n\n%s\n", deployments, gc, strings.TrimSpace(string(load)), Format(results))
}
