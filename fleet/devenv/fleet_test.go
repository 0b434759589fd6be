package devenv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	"github.com/flotilla-dev/flotilla/test/fleetenv"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
)

// TestFleet starts two spokes and checks what `flotilla dev up` promises: kubeconfigs,
// labelled Clusters that turn Ready, and agents that can be stopped and restarted;
// and, on the hub's, what a control plane promises: a working kubeconfig, and a Stop
// that may be called again.
func TestFleet(t *testing.T) {
	f := fleetenv.StartFleet(t, 2, fleetenv.WithHeartbeat(time.Second, 3*time.Second))
	ctx := context.Background()

	if got := fmt.Sprint(f.Spokes()); got != "[spoke-1 spoke-2]" {
		t.Fatalf("spokes %s", got)
	}
	for _, path := range []string{f.HubKubeconfig(), f.Kubeconfig("spoke-1"), f.Kubeconfig("spoke-2")} {
		if _, err := clientcmd.BuildConfigFromFlags("", path); err != nil {
			t.Errorf("kubeconfig %s: %v", path, err)
		}
	}

	var cl fleetv1.Cluster
	if err := f.HubClient().Get(ctx, client.ObjectKey{Name: "spoke-2"}, &cl); err != nil {
		t.Fatal(err)
	}
	if cl.Labels["env"] != "prod" || cl.Labels["name"] != "spoke-2" || cl.Status.Namespace != fleetv1.ClusterNamespace("spoke-2") {
		t.Errorf("spoke-2: labels %v, namespace %q", cl.Labels, cl.Status.Namespace)
	}

	ready := func(want bool) func() error {
		return func() error {
			if err := f.HubClient().Get(ctx, client.ObjectKey{Name: "spoke-1"}, &cl); err != nil {
				return err
			}
			if got := apimeta.IsStatusConditionTrue(cl.Status.Conditions, meta.ReadyCondition); got != want {
				return fmt.Errorf("Ready is %v: %v", got, cl.Status.Conditions)
			}
			return nil
		}
	}
	f.StopAgent("spoke-1")
	env.Eventually(t, "spoke-1 to go stale", ready(false))
	f.StartAgent("spoke-1")
	env.Eventually(t, "spoke-1 to be Ready again", ready(true))

	t.Run("the hub's control plane writes a working kubeconfig", func(t *testing.T) { testKubeconfig(t, f.Hub()) })

	dir := f.Dir()
	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := f.Hub().Stop(); err != nil {
		t.Fatalf("second Stop of the hub's control plane: %v", err)
	}
	if _, err := os.Stat(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

// testKubeconfig checks the kubeconfig a control plane writes: private, with a
// context named after it, and enough to use the Flotilla kinds.
func testKubeconfig(t *testing.T, cp *controlplane.ControlPlane) {
	path := filepath.Join(t.TempDir(), "kube", "config")
	if err := cp.WriteKubeconfig(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig: %v, mode %v; want 0600", err, fi.Mode())
	}
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if raw.CurrentContext != cp.Name() {
		t.Errorf("current context %q, want %s", raw.CurrentContext, cp.Name())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: api.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	// A Flotilla kind, through the written kubeconfig: the CRDs are installed and the
	// certificates work.
	ctx := context.Background()
	cl := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"env": "dev"}}}
	if err := c.Create(ctx, cl); err != nil {
		t.Fatal(err)
	}
	var got fleetv1.Cluster
	if err := cp.Client().Get(ctx, client.ObjectKey{Name: "a"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["env"] != "dev" {
		t.Errorf("labels %v", got.Labels)
	}
}
