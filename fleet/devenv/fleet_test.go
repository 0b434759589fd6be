package devenv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/fleetenv"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
)

// TestFleet starts two spokes and checks what `flotilla dev up` promises: kubeconfigs,
// labelled Clusters that turn Ready, and agents that can be stopped and restarted.
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

	dir := f.Dir()
	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}
