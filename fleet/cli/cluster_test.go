package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
	"github.com/flotilla-dev/flotilla/hub/manager"
	hubreg "github.com/flotilla-dev/flotilla/hub/registration"
	"github.com/flotilla-dev/flotilla/test/env"
)

// runCluster runs one command line as typed, without a --kubeconfig added in front:
// in cluster commands that flag names the spoke.
func runCluster(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestClusterCommands: add prints or applies the agent install with a fresh token,
// rotate replaces it, revoke drops it, remove deregisters the cluster and uninstalls the agent.
// No hub runs here: the commands only talk to the API servers (the shared hub API
// server, which has the hub's registration info, and a spoke of the test's own).
func TestClusterCommands(t *testing.T) {
	ctx := context.Background()
	h := hubPlane.Get(t)
	spokeCP := env.StartControlPlane(t, "edge-1", false)
	hubKC, spokeKC := h.kubeconfig, filepath.Join(t.TempDir(), "edge-1.kubeconfig")
	if err := spokeCP.WriteKubeconfig(spokeKC); err != nil {
		t.Fatal(err)
	}
	hub, spoke := h.cp.Client(), spokeCP.Client()
	tokenKey := client.ObjectKey{Namespace: manager.DefaultSystemNamespace, Name: hubreg.BootstrapTokenSecretName("edge-1")}

	out, _, err := runCluster(t, "cluster", "add", "edge-1", "--label", "env=edge", "--hub-kubeconfig", hubKC, "--ttl", "10m")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: Deployment", "name: " + registration.BootstrapSecretName, `verbs: ["impersonate"]`, "--bootstrap"} {
		if !strings.Contains(out, want) {
			t.Errorf("printed manifests lack %q:\n%s", want, out)
		}
	}
	var cl fleetv1.Cluster
	if err := hub.Get(ctx, client.ObjectKey{Name: "edge-1"}, &cl); err != nil || cl.Labels["env"] != "edge" {
		t.Fatalf("Cluster edge-1: %v, labels %v", err, cl.Labels)
	}
	if err := hub.Get(ctx, tokenKey, &corev1.Secret{}); err != nil {
		t.Fatalf("bootstrap token: %v", err)
	}

	if _, _, err := runCluster(t, "cluster", "add", "edge-1", "--hub-kubeconfig", hubKC, "--kubeconfig", hubKC); err == nil || !strings.Contains(err.Error(), "is the hub") {
		t.Errorf("installing into the hub: want refused, got %v", err)
	}
	if _, _, err := runCluster(t, "cluster", "add", "edge-1", "--hub-kubeconfig", hubKC, "--kubeconfig", spokeKC); err != nil {
		t.Fatal(err)
	}
	var bs corev1.Secret
	if err := spoke.Get(ctx, client.ObjectKey{Namespace: registration.SpokeNamespace, Name: registration.BootstrapSecretName}, &bs); err != nil {
		t.Fatalf("bootstrap Secret on the spoke: %v", err)
	}
	if string(bs.Data[registration.BootstrapKeyCluster]) != "edge-1" || len(bs.Data[registration.BootstrapKeyToken]) == 0 {
		t.Errorf("bootstrap Secret data: %v", bs.Data)
	}

	// rotate: a new token on the spoke, the old one refused on the hub.
	if _, _, err := runCluster(t, "cluster", "rotate", "edge-1", "--hub-kubeconfig", hubKC, "--kubeconfig", spokeKC); err != nil {
		t.Fatal(err)
	}
	var rotated corev1.Secret
	if err := spoke.Get(ctx, client.ObjectKeyFromObject(&bs), &rotated); err != nil {
		t.Fatal(err)
	}
	if string(rotated.Data[registration.BootstrapKeyToken]) == string(bs.Data[registration.BootstrapKeyToken]) {
		t.Error("rotate left the old bootstrap token on the spoke")
	}
	if _, _, err := runCluster(t, "cluster", "rotate", "nope", "--hub-kubeconfig", hubKC); err == nil {
		t.Error("rotating an unknown cluster succeeded")
	}

	if _, _, err := runCluster(t, "cluster", "revoke", "edge-1", "--hub-kubeconfig", hubKC); err != nil {
		t.Fatal(err)
	}
	if err := hub.Get(ctx, tokenKey, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("bootstrap token after revoke: want NotFound, got %v", err)
	}

	if _, _, err := runCluster(t, "cluster", "remove", "edge-1", "--hub-kubeconfig", hubKC, "--kubeconfig", spokeKC); err != nil {
		t.Fatal(err)
	}
	if err := hub.Get(ctx, client.ObjectKey{Name: "edge-1"}, &fleetv1.Cluster{}); !apierrors.IsNotFound(err) {
		t.Errorf("Cluster after remove: want NotFound, got %v", err)
	}
	if err := spoke.Get(ctx, client.ObjectKeyFromObject(&bs), &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("bootstrap Secret after remove: want NotFound, got %v", err)
	}
}

// TestClusterAddTakesTheRolloutImage: a cluster added while the hub offers an
// AgentRollout gets that image, so the rollout does not replace its agent at once;
// asking for another image still works, with a warning.
func TestClusterAddTakesTheRolloutImage(t *testing.T) {
	ctx := context.Background()
	h := hubPlane.Get(t)
	hub := h.cp.Client()
	image := func(out string) string {
		for _, l := range strings.Split(out, "\n") {
			if s := strings.TrimSpace(l); strings.HasPrefix(s, "image: ") {
				return strings.Trim(strings.TrimPrefix(s, "image: "), `"`)
			}
		}
		return ""
	}
	out, _, err := runCluster(t, "cluster", "add", "edge-img", "--hub-kubeconfig", h.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if got := image(out); got != hubreg.DefaultAgentImage {
		t.Errorf("without an AgentRollout: image %q, want the default %q", got, hubreg.DefaultAgentImage)
	}

	ar := &fleetv1.AgentRollout{ObjectMeta: metav1.ObjectMeta{Name: fleetv1.AgentRolloutName},
		Spec: fleetv1.AgentRolloutSpec{Image: "registry.example/flotilla-agent:v9.9.9"}}
	if err := hub.Create(ctx, ar); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Delete(ctx, ar) })
	out, _, err = runCluster(t, "cluster", "rotate", "edge-img", "--hub-kubeconfig", h.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if got := image(out); got != ar.Spec.Image {
		t.Errorf("with an AgentRollout: image %q, want its %q", got, ar.Spec.Image)
	}
	out, errOut, err := runCluster(t, "cluster", "rotate", "edge-img", "--hub-kubeconfig", h.kubeconfig, "--image", "registry.example/flotilla-agent:v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if got := image(out); got != "registry.example/flotilla-agent:v1.0.0" || !strings.Contains(errOut, "will be moved to it") {
		t.Errorf("an image asked for: %q, warning %q", got, errOut)
	}
}
