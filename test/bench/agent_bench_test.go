package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/artifactserver"
	"github.com/flotilla-dev/flotilla/test/env"
)

const (
	cluster = "spoke-1"
	hubNS   = fleetv1.ClusterNamespacePrefix + cluster
)

func configMaps(prefix string, n int) string {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-%d\ndata:\n  value: %q\n", prefix, i, strings.Repeat("x", 64))
	}
	return sb.String()
}

// rssKiB reads VmRSS of a process.
func rssKiB(pid int) int64 { return statusKiB(pid, "VmRSS:") }

// peakRSSKiB reads VmHWM of a process: the most it has ever had resident.
func peakRSSKiB(pid int) int64 { return statusKiB(pid, "VmHWM:") }

// statusKiB reads one "<field> N kB" line of /proc/<pid>/status.
func statusKiB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// agentBinary is bin/flotilla-agent, which `make build` makes.
func agentBinary(b *testing.B) (string, os.FileInfo) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "flotilla-agent")
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatalf("%s (run `make build`): %v", bin, err)
	}
	return bin, fi
}

// rig is a hub and a spoke control plane, a signing artifact server and, once
// started, the agent of cluster spoke-1 as its own process.
type rig struct {
	hub, spoke client.Client
	arts       *artifactserver.Server
	dir        string
	agent      *exec.Cmd
}

// newRig starts the control planes (stopped when b ends) and makes the spoke's
// namespaces.
func newRig(b *testing.B, spokeNamespaces ...string) *rig {
	hub := env.StartControlPlane(b, "hub", true)
	spoke := env.StartControlPlane(b, cluster, false)
	ctx := context.Background()
	r := &rig{hub: hub.Client(), spoke: spoke.Client(), arts: artifactserver.New(b), dir: b.TempDir()}
	if err := r.hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubNS}}); err != nil {
		b.Fatal(err)
	}
	for _, ns := range spokeNamespaces {
		if err := r.spoke.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
	}
	pem, err := artifact.MarshalPublicKeys(r.arts.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "keys.pem"), pem, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := hub.WriteKubeconfig(filepath.Join(r.dir, "hub.kubeconfig")); err != nil {
		b.Fatal(err)
	}
	if err := spoke.WriteKubeconfig(filepath.Join(r.dir, "spoke.kubeconfig")); err != nil {
		b.Fatal(err)
	}
	return r
}

// startAgent runs bin/flotilla-agent, with extra flags, until b ends (its log is
// printed if b failed).
func (r *rig) startAgent(b *testing.B, bin string, flags ...string) {
	args := []string{"--cluster-name", cluster, "--hub-kubeconfig", filepath.Join(r.dir, "hub.kubeconfig"),
		"--kubeconfig", filepath.Join(r.dir, "spoke.kubeconfig"), "--trusted-keys", filepath.Join(r.dir, "keys.pem"),
		"--state-dir", filepath.Join(r.dir, "state"), "--resync-interval", "1h",
		"--metrics-addr", "127.0.0.1:0"} // metrics on, as in a real install, on a free port
	r.agent = exec.Command(bin, append(args, flags...)...)
	logFile, _ := os.Create(filepath.Join(r.dir, "agent.log"))
	r.agent.Stdout, r.agent.Stderr = logFile, logFile
	if err := r.agent.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = r.agent.Process.Signal(os.Interrupt)
		_ = r.agent.Wait()
		logFile.Close()
		if b.Failed() {
			log, _ := os.ReadFile(filepath.Join(r.dir, "agent.log"))
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			b.Logf("agent log ends:\n%s", log)
		}
	})
}

func (r *rig) pid() int { return r.agent.Process.Pid }

// create signs and creates an Assignment of art for spoke-1; edit fills the rest of
// its spec before it is signed.
func (r *rig) create(b *testing.B, name, ns string, art fleetv1.SignedArtifact, edit func(*fleetv1.Assignment)) {
	a := &fleetv1.Assignment{
		ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: name},
		Spec: fleetv1.AssignmentSpec{
			Owner:           fleetv1.DeploymentReference{APIVersion: "delivery.flotilla.dev/v1alpha1", Kind: "Kustomization", Namespace: "default", Name: name},
			Artifact:        art,
			TargetNamespace: ns,
		},
	}
	if edit != nil {
		edit(a)
	}
	r.arts.Sign(cluster, a)
	if err := r.hub.Create(context.Background(), a); err != nil {
		b.Fatal(err)
	}
}

// ready counts the Assignments Ready on the revision they name.
func (r *rig) ready() (int, error) {
	list := &fleetv1.AssignmentList{}
	if err := r.hub.List(context.Background(), list, client.InNamespace(hubNS)); err != nil {
		return 0, err
	}
	n := 0
	for _, a := range list.Items {
		if a.Status.AppliedDigest == a.Spec.Artifact.Digest && apimeta.IsStatusConditionTrue(a.Status.Conditions, meta.ReadyCondition) {
			n++
		}
	}
	return n, nil
}

func (r *rig) waitReady(b *testing.B, want int, timeout time.Duration) {
	env.EventuallyWithin(b, timeout, fmt.Sprintf("%d Assignments Ready", want), func() error {
		n, err := r.ready()
		if err == nil && n < want {
			err = fmt.Errorf("%d Ready", n)
		}
		return err
	})
}

// BenchmarkAgent runs bin/flotilla-agent against a hub and a spoke and measures its
// idle and loaded memory, its size, and how fast it applies compared with plain
// server-side apply on the same API server.
func BenchmarkAgent(b *testing.B) {
	bin, fi := agentBinary(b)
	r := newRig(b, "raw", "first", "load")
	ctx := context.Background()

	// Raw server-side apply throughput: 1,000 objects, one after the other, as the
	// agent applies them.
	began := time.Now()
	for i := range 1000 {
		u := &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]interface{}{"name": fmt.Sprintf("raw-%d", i), "namespace": "raw"},
			"data":     map[string]interface{}{"value": strings.Repeat("x", 64)},
		}}
		if err := r.spoke.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("bench"), client.ForceOwnership); err != nil {
			b.Fatal(err)
		}
	}
	raw := time.Since(began)

	r.startAgent(b, bin)
	time.Sleep(10 * time.Second)
	idle := rssKiB(r.pid())

	add := func(name, manifests string) fleetv1.SignedArtifact {
		return r.arts.Add(name, map[string]string{"manifests.yaml": manifests})
	}

	b.ResetTimer()
	began = time.Now()
	r.create(b, "first", "first", add("first", configMaps("first", 1000)), nil)
	r.waitReady(b, 1, 3*time.Minute)
	first := time.Since(began)

	began = time.Now()
	for i := range 100 {
		r.create(b, fmt.Sprintf("load-%d", i), "load", add(fmt.Sprintf("load-%d", i), configMaps(fmt.Sprintf("load-%d", i), 50)), nil)
	}
	r.waitReady(b, 101, 10*time.Minute)
	load := time.Since(began)
	time.Sleep(5 * time.Second)
	loaded := rssKiB(r.pid())
	b.StopTimer()

	b.ReportMetric(float64(idle)/1024, "idle-RSS-MiB")
	b.ReportMetric(float64(loaded)/1024, "loaded-RSS-MiB")
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	b.ReportMetric(first.Seconds(), "first-apply-1000-s")
	b.ReportMetric(raw.Seconds(), "raw-ssa-1000-s")
	fmt.Printf("\n%-44s %12s\n", "agent figure", "value")
	fmt.Printf("%-44s %9.1f MiB\n", "binary size (bin/flotilla-agent)", float64(fi.Size())/(1<<20))
	fmt.Printf("%-44s %9.1f MiB\n", "idle RSS (no Assignments)", float64(idle)/1024)
	fmt.Printf("%-44s %9.1f MiB\n", "RSS with 1 x 1,000 + 100 x 50 objects", float64(loaded)/1024)
	fmt.Printf("%-44s %9.2f s\n", "first apply of 1,000 objects (to Ready)", first.Seconds())
	fmt.Printf("%-44s %9.2f s\n", "raw SSA of 1,000 objects, plain client", raw.Seconds())
	fmt.Printf("%-44s %9.2f s\n", "100 Assignments x 50 objects (to Ready)", load.Seconds())
}

// BenchmarkDriftWatch measures what the drift watch costs: the agent's RSS with
// 1,000 and then 5,000 applied objects (ConfigMaps, 5 Assignments of 1,000), once
// with the watch (metadata-only informers of what it applied) and once with
// --drift-watch=false, each with a fresh agent and control planes. With the watch it
// also times how soon a hand edit is healed.
func BenchmarkDriftWatch(b *testing.B) {
	bin, _ := agentBinary(b)
	type figures struct{ idle, at1k, at5k, peak int64 }
	var got [2]figures
	var healed time.Duration
	b.ResetTimer()
	for i, watch := range []bool{false, true} {
		r := newRig(b, "d0", "d1", "d2", "d3", "d4")
		r.startAgent(b, bin, fmt.Sprintf("--drift-watch=%t", watch))
		time.Sleep(5 * time.Second)
		f := figures{idle: rssKiB(r.pid())}
		for n := range 5 {
			name := fmt.Sprintf("d%d", n)
			r.create(b, name, name, r.arts.Add(name, map[string]string{"manifests.yaml": configMaps(name, 1000)}), nil)
			r.waitReady(b, n+1, 5*time.Minute)
			if n == 0 {
				time.Sleep(5 * time.Second)
				f.at1k = rssKiB(r.pid())
			}
		}
		time.Sleep(5 * time.Second)
		f.at5k, f.peak = rssKiB(r.pid()), peakRSSKiB(r.pid())
		got[i] = f
		if watch {
			healed = healEdit(b, r)
		}
		_ = r.agent.Process.Signal(os.Interrupt)
	}
	b.StopTimer()
	mib := func(k int64) float64 { return float64(k) / 1024 }
	b.ReportMetric(mib(got[1].at5k-got[0].at5k), "watch-cost-5000-MiB")
	fmt.Printf("\n%-40s %14s %14s\n", "agent RSS", "--drift-watch", "=false")
	fmt.Printf("%-40s %10.1f MiB %10.1f MiB\n", "idle (no Assignments)", mib(got[1].idle), mib(got[0].idle))
	fmt.Printf("%-40s %10.1f MiB %10.1f MiB\n", "1,000 applied objects", mib(got[1].at1k), mib(got[0].at1k))
	fmt.Printf("%-40s %10.1f MiB %10.1f MiB\n", "5,000 applied objects", mib(got[1].at5k), mib(got[0].at5k))
	fmt.Printf("%-40s %10.1f MiB %10.1f MiB\n", "peak (VmHWM)", mib(got[1].peak), mib(got[0].peak))
	fmt.Printf("%-40s %10.2f s\n", "hand edit healed (watch on)", healed.Seconds())
}

// healEdit edits one applied ConfigMap by hand and returns how soon the agent put
// it back.
func healEdit(b *testing.B, r *rig) time.Duration {
	ctx := context.Background()
	cm := &corev1.ConfigMap{}
	if err := r.spoke.Get(ctx, client.ObjectKey{Namespace: "d0", Name: "d0-7"}, cm); err != nil {
		b.Fatal(err)
	}
	want := cm.Data["value"]
	cm.Data["value"] = "by hand"
	if err := r.spoke.Update(ctx, cm); err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	env.EventuallyWithin(b, 30*time.Second, "the hand edit healed", func() error {
		if err := r.spoke.Get(ctx, client.ObjectKey{Namespace: "d0", Name: "d0-7"}, cm); err != nil {
			return err
		}
		if cm.Data["value"] != want {
			return fmt.Errorf("value %q", cm.Data["value"])
		}
		return nil
	})
	return time.Since(began)
}
