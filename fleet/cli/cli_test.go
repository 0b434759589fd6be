package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	"github.com/flotilla-dev/flotilla/hub/manager"
	hubreg "github.com/flotilla-dev/flotilla/hub/registration"
	"github.com/flotilla-dev/flotilla/test/env"
)

// run runs one flotilla command line against the hub whose kubeconfig is given.
func run(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func setReady(obj interface{ SetConditions([]metav1.Condition) }, status metav1.ConditionStatus, reason, msg string) {
	c := []metav1.Condition{}
	apimeta.SetStatusCondition(&c, metav1.Condition{Type: meta.ReadyCondition, Status: status, Reason: reason, Message: msg})
	obj.SetConditions(c)
}

func TestMain(m *testing.M) { env.Main(m) }

// hubPlane is the hub API server the CLI's tests share (no hub runs on it), with
// what a running hub publishes for registration.
var hubPlane = env.NewShared(func(t testing.TB) hubAPI {
	cp := env.StartControlPlane(t, "hub", true)
	kubeconfig := filepath.Join(t.TempDir(), "hub.kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cp.Client().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manager.DefaultSystemNamespace}}); err != nil {
		t.Fatal(err)
	}
	if err := hubreg.PublishHubInfo(ctx, cp.Client(), manager.DefaultSystemNamespace, hubreg.HubInfo{Server: cp.URL(), RegistrationURL: "http://127.0.0.1:1/register"}); err != nil {
		t.Fatal(err)
	}
	return hubAPI{cp: cp, kubeconfig: kubeconfig}
})

type hubAPI struct {
	cp         *controlplane.ControlPlane
	kubeconfig string
}

// hubObjects creates a Cluster, a GitRepository and a Kustomization whose statuses
// are set as a hub would set them, and deletes them when the test ends.
func hubObjects(t *testing.T, c client.Client) {
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	cl := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "spoke-1", Labels: map[string]string{"env": "dev"}}}
	repo := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "default"},
		Spec:       sourcev1.GitRepositorySpec{URL: "https://example.com/demo.git"},
	}
	ks := &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "default"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "demo"},
			Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}},
		},
	}
	t.Cleanup(func() {
		for _, o := range []client.Object{cl, repo, ks} {
			if err := c.Delete(ctx, o); err != nil {
				t.Errorf("delete %s: %v", o.GetName(), err)
			}
		}
	})
	must(c.Create(ctx, cl))
	now := metav1.Now()
	cl.Status = fleetv1.ClusterStatus{
		LastHeartbeatTime: &now, KubernetesVersion: "v1.36.3", AgentVersion: "dev",
		Namespace:   fleetv1.ClusterNamespace("spoke-1"),
		Assignments: meta.AssignmentCounts{Total: 2, Ready: 1, Failed: 1},
	}
	setReady(cl, metav1.ConditionTrue, meta.HeartbeatFreshReason, "agent heartbeat is fresh")
	must(c.Status().Update(ctx, cl))

	must(c.Create(ctx, repo))
	repo.Status.Artifact = &meta.Artifact{
		URL: "http://hub/a.tar.gz", Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567",
		Digest: "sha256:" + strings.Repeat("a", 64), LastUpdateTime: now,
	}
	setReady(repo, metav1.ConditionTrue, meta.SucceededReason, "stored artifact")
	must(c.Status().Update(ctx, repo))

	must(c.Create(ctx, ks))
	ks.Status.LastAppliedRevision = repo.Status.Artifact.Revision
	ks.Status.Clusters = meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 1, Failed: 1}
	ks.Status.Failures = []meta.ClusterFailure{{Cluster: "spoke-2", Message: "apply failed: namespaces \"x\" not found"}}
	setReady(ks, metav1.ConditionFalse, meta.ClustersFailedReason, "1 of 2 clusters failed")
	must(c.Status().Update(ctx, ks))
}

// TestHubCommands runs the read commands, and then the commands that change objects,
// against the shared hub API server.
func TestHubCommands(t *testing.T) {
	h := hubPlane.Get(t)
	c, kubeconfig := h.cp.Client(), h.kubeconfig
	hubObjects(t, c)
	t.Run("read", func(t *testing.T) { testReadCommands(t, kubeconfig) })
	t.Run("reconcile, suspend, resume", func(t *testing.T) { testReconcileSuspendResume(t, c, kubeconfig) })
}

func testReadCommands(t *testing.T, kubeconfig string) {

	t.Run("get clusters", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "get", "fcluster")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"NAME", "READY", "STATUS", "spoke-1", "v1.36.3", "True", "agent heartbeat is fresh"} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in\n%s", want, out)
			}
		}
	})

	t.Run("get kustomizations across namespaces", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "get", "ks", "-A")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAMESPACE") {
			t.Fatalf("want a header with NAMESPACE and one row, got\n%s", out)
		}
		if f := strings.Fields(lines[1]); f[0] != "default" || f[1] != "demo" || f[2] != "main@sha1:0123456789ab" {
			t.Errorf("row %q", lines[1])
		}
	})

	t.Run("get one object as json", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "get", "gitrepo", "demo", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var r sourcev1.GitRepository
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Kind != "GitRepository" || r.Spec.URL == "" {
			t.Errorf("json %v: %s", err, out)
		}
	})

	t.Run("get a missing object and an unknown kind", func(t *testing.T) {
		if _, _, err := run(t, kubeconfig, "get", "ks", "nope"); err == nil || !strings.Contains(err.Error(), `"nope" not found`) {
			t.Errorf("missing object: %v", err)
		}
		if _, _, err := run(t, kubeconfig, "get", "pods"); err == nil || !strings.Contains(err.Error(), "kustomizations") {
			t.Errorf("unknown kind: %v", err)
		}
	})

	t.Run("status", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "status")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", out)
		for _, want := range []string{
			"CLUSTERS", "GROUPS", "SOURCES", "KUSTOMIZATIONS",
			"2 (1 ready, 1 failed)", "default/demo", `spoke-2: apply failed: namespaces "x" not found`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in\n%s", want, out)
			}
		}
	})

	t.Run("status as json", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "status", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var s FleetStatus
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(s.Clusters) != 1 || s.Clusters[0].Ready != "True" || s.Clusters[0].Assignments.Failed != 1 {
			t.Errorf("clusters %+v", s.Clusters)
		}
		if len(s.Kustomizations) != 1 || s.Kustomizations[0].Clusters.Targeted != 2 || s.Kustomizations[0].FirstFailure == nil {
			t.Errorf("kustomizations %+v", s.Kustomizations)
		}
	})
}

func testReconcileSuspendResume(t *testing.T, c client.Client, kubeconfig string) {
	ctx := context.Background()
	key := client.ObjectKey{Namespace: "default", Name: "demo"}

	// Plays the controller: handles a request once it sees one.
	handle := func(ready metav1.ConditionStatus, msg string) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 100; i++ {
				var ks deliveryv1.Kustomization
				if err := c.Get(ctx, key, &ks); err == nil {
					if at := ks.Annotations[meta.ReconcileRequestedAtAnnotation]; at != "" && at != ks.Status.LastHandledReconcileAt {
						ks.Status.LastHandledReconcileAt = at
						setReady(&ks, ready, meta.SucceededReason, msg)
						if err := c.Status().Update(ctx, &ks); err == nil {
							return
						}
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		return done
	}

	done := handle(metav1.ConditionTrue, "all clusters ready")
	_, errOut, err := run(t, kubeconfig, "reconcile", "kustomization", "demo", "--timeout", "10s")
	<-done
	if err != nil || !strings.Contains(errOut, "✔ Kustomization default/demo reconciled, revision main@sha1:") {
		t.Errorf("reconcile: %v\n%s", err, errOut)
	}

	done = handle(metav1.ConditionFalse, "spoke-2 failed")
	_, _, err = run(t, kubeconfig, "reconcile", "ks", "demo", "--timeout", "10s")
	<-done
	if err == nil || !strings.Contains(err.Error(), "spoke-2 failed") {
		t.Errorf("reconcile of a failing Kustomization: %v", err)
	}

	if _, _, err := run(t, kubeconfig, "reconcile", "source", "git", "demo", "--timeout", "300ms"); err == nil || !strings.Contains(err.Error(), "has not handled") {
		t.Errorf("reconcile without a controller: %v", err)
	}

	if _, _, err := run(t, kubeconfig, "suspend", "kustomization", "demo"); err != nil {
		t.Fatal(err)
	}
	var ks deliveryv1.Kustomization
	if err := c.Get(ctx, key, &ks); err != nil || !ks.Spec.Suspend {
		t.Fatalf("after suspend: %v, suspend=%v", err, ks.Spec.Suspend)
	}
	if _, _, err := run(t, kubeconfig, "reconcile", "kustomization", "demo"); err == nil || !strings.Contains(err.Error(), "suspended") {
		t.Errorf("reconcile of a suspended Kustomization: %v", err)
	}
	before := ks.Annotations[meta.ReconcileRequestedAtAnnotation]
	if _, _, err := run(t, kubeconfig, "resume", "kustomization", "demo", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, key, &ks); err != nil || ks.Spec.Suspend || ks.Annotations[meta.ReconcileRequestedAtAnnotation] == before {
		t.Errorf("after resume: %v, suspend=%v, annotations %v", err, ks.Spec.Suspend, ks.Annotations)
	}
}

func TestDevDownWithoutFleet(t *testing.T) {
	_, errOut, err := run(t, "/dev/null", "dev", "down", "--dir", t.TempDir())
	if err != nil || !strings.Contains(errOut, "No fleet runs") {
		t.Errorf("%v: %s", err, errOut)
	}
}

func TestShortRevision(t *testing.T) {
	for in, want := range map[string]string{
		"main@sha1:0123456789abcdef0123456789abcdef01234567": "main@sha1:0123456789ab",
		"v1.0.0@sha1:abc": "v1.0.0@sha1:abc",
		"":                "",
	} {
		if got := shortRevision(in); got != want {
			t.Errorf("shortRevision(%q) = %q, want %q", in, got, want)
		}
	}
}
