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
func rssKiB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// BenchmarkAgent runs bin/flotilla-agent against a hub and a spoke and measures its
// idle and loaded memory, its size, and how fast it applies compared with plain
// server-side apply on the same API server.
func BenchmarkAgent(b *testing.B) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "flotilla-agent")
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatalf("%s (run `make build`): %v", bin, err)
	}
	hub := env.StartControlPlane(b, "hub", true)
	spoke := env.StartControlPlane(b, cluster, false)
	ctx := context.Background()
	hc, sc := hub.Client(), spoke.Client()
	for _, ns := range []string{hubNS} {
		if err := hc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
	}
	for _, ns := range []string{"raw", "first", "load"} {
		if err := sc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
	}

	arts := artifactserver.New(b)
	dir := b.TempDir()
	pem, err := artifact.MarshalPublicKeys(arts.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.pem")
	if err := os.WriteFile(keys, pem, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := hub.WriteKubeconfig(filepath.Join(dir, "hub.kubeconfig")); err != nil {
		b.Fatal(err)
	}
	if err := spoke.WriteKubeconfig(filepath.Join(dir, "spoke.kubeconfig")); err != nil {
		b.Fatal(err)
	}

	// Raw server-side apply throughput: 1,000 objects, one after the other, as the
	// agent applies them.
	began := time.Now()
	for i := range 1000 {
		u := &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]interface{}{"name": fmt.Sprintf("raw-%d", i), "namespace": "raw"},
			"data":     map[string]interface{}{"value": strings.Repeat("x", 64)},
		}}
		if err := sc.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("bench"), client.ForceOwnership); err != nil {
			b.Fatal(err)
		}
	}
	raw := time.Since(began)

	cmd := exec.Command(bin, "--cluster-name", cluster, "--hub-kubeconfig", filepath.Join(dir, "hub.kubeconfig"),
		"--kubeconfig", filepath.Join(dir, "spoke.kubeconfig"), "--trusted-keys", keys,
		"--state-dir", filepath.Join(dir, "state"), "--resync-interval", "1h")
	logFile, _ := os.Create(filepath.Join(dir, "agent.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		logFile.Close()
	})
	time.Sleep(10 * time.Second)
	idle := rssKiB(cmd.Process.Pid)

	create := func(name, ns string, art fleetv1.SignedArtifact) {
		a := &fleetv1.Assignment{
			ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: name},
			Spec: fleetv1.AssignmentSpec{
				Owner:           fleetv1.DeploymentReference{APIVersion: "delivery.flotilla.dev/v1alpha1", Kind: "Kustomization", Namespace: "default", Name: name},
				Artifact:        art,
				TargetNamespace: ns,
			},
		}
		arts.Sign(cluster, a)
		if err := hc.Create(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	ready := func() (int, error) {
		list := &fleetv1.AssignmentList{}
		if err := hc.List(ctx, list, client.InNamespace(hubNS)); err != nil {
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
	waitReady := func(want int, timeout time.Duration) {
		env.EventuallyWithin(b, timeout, fmt.Sprintf("%d Assignments Ready", want), func() error {
			n, err := ready()
			if err == nil && n < want {
				err = fmt.Errorf("%d Ready", n)
			}
			return err
		})
	}
	b.Cleanup(func() {
		if b.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			b.Logf("agent log ends:\n%s", log)
		}
	})
	add := func(name, manifests string) fleetv1.SignedArtifact {
		return arts.Add(name, map[string]string{"manifests.yaml": manifests})
	}

	b.ResetTimer()
	began = time.Now()
	create("first", "first", add("first", configMaps("first", 1000)))
	waitReady(1, 3*time.Minute)
	first := time.Since(began)

	began = time.Now()
	for i := range 100 {
		create(fmt.Sprintf("load-%d", i), "load", add(fmt.Sprintf("load-%d", i), configMaps(fmt.Sprintf("load-%d", i), 50)))
	}
	waitReady(101, 10*time.Minute)
	load := time.Since(began)
	time.Sleep(5 * time.Second)
	loaded := rssKiB(cmd.Process.Pid)
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
