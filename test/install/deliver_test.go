package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	"k8s.io/client-go/rest"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// TestInstalledHubDelivers installs the hub with `flotilla install` on a real API
// server, runs the hub with exactly the identity and RBAC the install gives it (its
// ServiceAccount, impersonated), registers a spoke's agent through it and delivers
// a Kustomization to that spoke; `flotilla check` then finds nothing wrong.
func TestInstalledHubDelivers(t *testing.T) {
	var kubeconfig string
	f := fleetenv.StartFleet(t, 1, fleetenv.With(func(o *devenv.Options) {
		o.Hub = func(h *manager.Options) {
			// The hub's control plane is up, the hub not yet: install, then start
			// the hub as its ServiceAccount.
			kubeconfig = installOn(t, h.Config)
			h.Config = asHub(h.Config)
		}
	}))
	hub := f.HubClient()
	ctx := context.Background()

	git := gitserver.New(t)
	repo := git.CreateRepo("app")
	repo.Write(map[string]string{
		"deploy/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- cm.yaml\n",
		"deploy/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: installed\n  namespace: default\ndata:\n  by: flotilla-hub\n",
	})
	ns := env.Unique("install")
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := hub.Create(ctx, &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec:       sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := hub.Create(ctx, &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path:      "./deploy", Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	spoke := f.SpokeClient("spoke-1")
	env.Eventually(t, "the ConfigMap delivered to spoke-1", func() error {
		var cm corev1.ConfigMap
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: "default", Name: "installed"}, &cm); err != nil {
			return err
		}
		if cm.Data["by"] != "flotilla-hub" {
			return fmt.Errorf("data %v", cm.Data)
		}
		return nil
	})

	// No kubelet runs here: the Deployment is made available by hand, as one would
	// be once its pod is ready.
	out, err := flotilla(ctx, "check", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(out, "✗ hub Deployment flotilla-system/flotilla-hub: not available") {
		t.Fatalf("check before the hub Deployment is available: err=%v\n%s", err, out)
	}
	markAvailable(t, hub)
	out, err = flotilla(ctx, "check", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("flotilla check: %v\n%s", err, out)
	}
	for _, want := range []string{"✔ CRDs:", "✔ RBAC of flotilla-system/flotilla-hub: all", "✔ artifact server:", "✔ agents: 1 of 1 clusters Ready, 1 with the hub's version", "all checks passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("flotilla check:\n%s", out)
}

// installOn runs `flotilla install` with the images of this build against the API
// server of cfg (admin) and returns the kubeconfig it used.
func installOn(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := filepath.Join(t.TempDir(), "hub.kubeconfig")
	b, err := controlplane.KubeconfigFor("hub", cfg)
	if err == nil {
		err = os.WriteFile(kc, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := flotilla(context.Background(), "install", "--kubeconfig", kc, "--version", version.Version)
	if err != nil {
		t.Fatalf("flotilla install: %v\n%s", err, out)
	}
	return kc
}

// markAvailable sets the hub Deployment's status as the Deployment controller would
// once its pod is ready.
func markAvailable(t *testing.T, c client.Client) {
	t.Helper()
	var d appsv1.Deployment
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: manager.DefaultSystemNamespace, Name: "flotilla-hub"}, &d); err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
			Message: "Deployment has minimum availability.", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}
	if err := c.Status().Update(context.Background(), &d); err != nil {
		t.Fatal(err)
	}
}
