package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/kustomize"
)

// TestFleetVerbs: export leaves out what the server wrote, a Cluster is suspended by
// pausing it, an Assignment's reconcile is a request to its agent, Tenants are listed,
// completion lists names from the hub, and the notification kinds are listed,
// suspended, resumed and exported.
func TestFleetVerbs(t *testing.T) {
	h := hubPlane.Get(t)
	c, kubeconfig := h.cp.Client(), h.kubeconfig
	hubObjects(t, c)
	ctx := context.Background()

	tenant := &tenancyv1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a", Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
		Spec:       tenancyv1.TenantSpec{Namespaces: []string{"team-a", "team-a-dev"}, TargetNamespaces: []string{"team-a"}},
	}
	if err := c.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, tenant) })
	tenant.Status.Clusters = tenancyv1.TenantClusterCounts{Total: 3, Ready: 2}
	setReady(tenant, metav1.ConditionFalse, "Progressing", "set up on 2 of 3 clusters")
	if err := c.Status().Update(ctx, tenant); err != nil {
		t.Fatal(err)
	}

	t.Run("export", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "export", "ks", "demo", "-n", "default")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		md := doc["metadata"].(map[string]any)
		if doc["kind"] != deliveryv1.KustomizationKind || doc["status"] != nil || len(md) != 2 || md["name"] != "demo" || md["namespace"] != "default" {
			t.Errorf("export:\n%s", out)
		}
		out, _, err = run(t, kubeconfig, "export", "tenants")
		if err != nil || strings.Contains(out, "last-applied") || strings.Contains(out, "status") || !strings.Contains(out, "- team-a-dev") {
			t.Errorf("export tenants: %v\n%s", err, out)
		}
	})

	t.Run("get tenants", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "get", "tenants")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || strings.Join(strings.Fields(lines[1])[:4], " ") != "team-a team-a,team-a-dev 3 2" || !strings.Contains(lines[1], "set up on 2 of 3 clusters") {
			t.Errorf("get tenants:\n%s", out)
		}
	})

	t.Run("notification kinds", func(t *testing.T) {
		p := &notificationv1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "chat"},
			Spec: notificationv1.ProviderSpec{Type: "slack", Address: "https://chat.example/hook"}}
		a := &notificationv1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fleet"},
			Spec: notificationv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "chat"}, EventSeverity: "error",
				EventSources: []notificationv1.EventSource{{Kind: deliveryv1.KustomizationKind, Name: "*"}}}}
		for _, o := range []client.Object{p, a} {
			if err := c.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Delete(ctx, o) })
		}
		out, _, err := run(t, kubeconfig, "get", "providers", "-n", "default")
		if err != nil || !strings.Contains(out, "TYPE") || len(strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])) < 3 ||
			strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])[1] != "slack" {
			t.Errorf("get providers: %v\n%s", err, out)
		}
		if _, _, err := run(t, kubeconfig, "suspend", "alert", "fleet", "-n", "default"); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil || !a.Spec.Suspend {
			t.Fatalf("after suspend alert: %v, suspend=%v", err, a.Spec.Suspend)
		}
		out, _, err = run(t, kubeconfig, "get", "alerts", "-n", "default")
		if err != nil || !strings.Contains(out, "chat") || !strings.Contains(out, "true") {
			t.Errorf("get alerts: %v\n%s", err, out)
		}
		// A Provider or Alert has no reconcile request to wait on: resume returns.
		if _, _, err := run(t, kubeconfig, "resume", "alert", "fleet", "-n", "default"); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil || a.Spec.Suspend {
			t.Errorf("after resume alert: %v, suspend=%v", err, a.Spec.Suspend)
		}
		out, _, err = run(t, kubeconfig, "export", "provider", "chat", "-n", "default")
		if err != nil || !strings.Contains(out, "kind: Provider") || !strings.Contains(out, "address: https://chat.example/hook") || strings.Contains(out, "status") {
			t.Errorf("export provider: %v\n%s", err, out)
		}
	})

	t.Run("suspend and resume a cluster", func(t *testing.T) {
		if _, _, err := run(t, kubeconfig, "suspend", "cluster", "spoke-1"); err != nil {
			t.Fatal(err)
		}
		var cl fleetv1.Cluster
		if err := c.Get(ctx, client.ObjectKey{Name: "spoke-1"}, &cl); err != nil || !cl.Spec.Paused {
			t.Fatalf("after suspend: %v, paused=%v", err, cl.Spec.Paused)
		}
		if out, _, err := run(t, kubeconfig, "get", "fcluster"); err != nil || !strings.Contains(out, "paused: ") {
			t.Errorf("get of a paused cluster: %v\n%s", err, out)
		}
		if _, _, err := run(t, kubeconfig, "resume", "cluster", "spoke-1"); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKey{Name: "spoke-1"}, &cl); err != nil || cl.Spec.Paused {
			t.Errorf("after resume: %v, paused=%v", err, cl.Spec.Paused)
		}
		if _, _, err := run(t, kubeconfig, "suspend", "cluster", "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("suspend of a missing cluster: %v", err)
		}
	})

	t.Run("reconcile an assignment", func(t *testing.T) {
		ns := fleetv1.ClusterNamespace("spoke-9")
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		a := &fleetv1.Assignment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.AssignmentName(deliveryv1.KustomizationKind, "default", "demo")},
			Spec: fleetv1.AssignmentSpec{
				Owner:    fleetv1.DeploymentReference{APIVersion: deliveryv1.GroupVersion.String(), Kind: deliveryv1.KustomizationKind, Namespace: "default", Name: "demo"},
				Artifact: fleetv1.SignedArtifact{URL: "http://hub/x.tar.gz", Digest: "sha256:" + strings.Repeat("d", 64), Signature: "x"},
			},
		}
		if err := c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, _, err := run(t, kubeconfig, "reconcile", "assignment", a.Name); err == nil || !strings.Contains(err.Error(), "--cluster is required") {
			t.Errorf("without --cluster: %v", err)
		}
		_, errOut, err := run(t, kubeconfig, "reconcile", "assignment", a.Name, "--cluster", "spoke-9")
		if err != nil || !strings.Contains(errOut, "requested from the agent of spoke-9") {
			t.Fatalf("%v: %s", err, errOut)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil || a.Annotations[meta.ReconcileRequestedAtAnnotation] == "" {
			t.Errorf("after reconcile: %v, annotations %v", err, a.Annotations)
		}
		out, _, err := run(t, kubeconfig, "__complete", "reconcile", "assignment", "--cluster", "spoke-9", "")
		if err != nil || !strings.Contains(out, a.Name+"\n") {
			t.Errorf("completion of assignments: %v\n%s", err, out)
		}
	})

	t.Run("completion", func(t *testing.T) {
		out, _, err := run(t, kubeconfig, "__complete", "get", "")
		if err != nil || !strings.Contains(out, "kustomizations\n") || !strings.Contains(out, "tenants\n") {
			t.Errorf("kinds: %v\n%s", err, out)
		}
		out, _, err = run(t, kubeconfig, "__complete", "suspend", "cluster", "spo")
		if err != nil || !strings.Contains(out, "spoke-1\n") {
			t.Errorf("clusters: %v\n%s", err, out)
		}
		out, _, err = run(t, kubeconfig, "__complete", "events", "--for", "kustomization/")
		if err != nil || !strings.Contains(out, "kustomization/demo\n") {
			t.Errorf("--for: %v\n%s", err, out)
		}
		// A hub that does not answer completes nothing, quickly, rather than failing.
		out, _, err = run(t, "/nonexistent", "__complete", "get", "ks", "")
		if err != nil || strings.Contains(out, "demo") {
			t.Errorf("no hub: %v\n%s", err, out)
		}
	})
}

func TestBuildLocal(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".git/HEAD", "ref: refs/heads/main\n")
	write("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  port: \"${port}\"\n  replicas: ${replicas}\n")
	write("base/skip.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: skip\n  annotations:\n    fleet.flotilla.dev/substitute: disabled\ndata:\n  v: ${port}\n")
	write("base/kustomization.yaml", "resources:\n- cm.yaml\n- skip.yaml\n")
	write("overlay/kustomization.yaml", "resources:\n- ../base\nnamePrefix: prod-\n")

	if got := checkoutRoot(filepath.Join(dir, "overlay")); got != dir {
		t.Errorf("checkoutRoot = %s, want %s", got, dir)
	}
	out, err := buildLocal(filepath.Join(dir, "overlay"), kustomize.Overlay{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "name: prod-cm") {
		t.Errorf("the overlay's base was not built:\n%s", out)
	}
	sub, err := substitute(out, map[string]string{"port": "8080", "replicas": "3"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(sub)
	if !strings.Contains(s, `port: "8080"`) || !strings.Contains(s, "replicas: 3") || !strings.Contains(s, "v: ${port}") || strings.Count(s, "---\n") != 1 {
		t.Errorf("substituted:\n%s", s)
	}
	if _, err := buildLocal(filepath.Join(dir, "missing"), kustomize.Overlay{}); err == nil {
		t.Error("a missing folder built")
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err   error
		code  int
		quiet bool
	}{
		{nil, 0, true},
		{&ExitError{Code: 1}, 1, true},
		{errors.New("boom"), 1, false},
	} {
		if code, quiet := ExitCode(c.err); code != c.code || quiet != c.quiet {
			t.Errorf("ExitCode(%v) = %d, %v", c.err, code, quiet)
		}
	}
}
