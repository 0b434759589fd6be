package cli

import (
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/api/registration"
)

// TestClusterAddBootstrapSecret prints only the bootstrap Secret, for agents
// installed from the kustomize base deploy/agent.
func TestClusterAddBootstrapSecret(t *testing.T) {
	h := hubPlane.Get(t)
	out, _, err := runCluster(t, "cluster", "add", "edge-secret", "--hub-kubeconfig", h.kubeconfig, "--bootstrap-secret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "kind:") != 1 || !strings.Contains(out, "kind: Secret") || !strings.Contains(out, "name: "+registration.BootstrapSecretName) {
		t.Fatalf("want the bootstrap Secret alone:\n%s", out)
	}
}
