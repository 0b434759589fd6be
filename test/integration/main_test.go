package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
)

func TestMain(m *testing.M) {
	// The tests wait on API servers, hubs and agents far more than they compute.
	env.DefaultParallel(4)
	env.Main(m)
}

// shared is the fleet most tests share: a hub and spoke-1…spoke-3, each with an
// agent. A test that uses it keeps to the names newTest gives it and places its
// deployments by cluster name (or labels of its own), so tests run side by side; a
// test that stops an agent takes the fleet exclusively. Every Cluster carries the
// variable region, set once here, because changing a Cluster's variables rewrites
// the Assignments of every deployment on it. The hub also serves Cluster API's
// Cluster kind, installed before it starts (it looks for Cluster API once, at start).
var shared = fleetenv.Share(func(t testing.TB) *fleetenv.Fleet {
	crd := capiCRD(t)
	f := fleetenv.StartFleet(t, 3, fleetenv.With(func(o *devenv.Options) {
		o.Hub = func(h *manager.Options) {
			// Cluster API may bring tier, not env: whoever provisions a cluster must not
			// choose the labels placement and Tenants select on.
			h.CAPILabelKeys = []string{"tier"}
			if _, err := envtest.InstallCRDs(h.Config, envtest.CRDInstallOptions{Paths: []string{crd}}); err != nil {
				t.Errorf("install the Cluster API CRD: %v", err)
			}
		}
	}))
	for name, region := range regions {
		setVariables(t, f.HubClient(), name, map[string]string{"region": region})
	}
	return f
})

// regions are the shared fleet's region variables.
var regions = map[string]string{"spoke-1": "ap-south", "spoke-2": "eu-west", "spoke-3": "us-east"}

// capiCRD is Cluster API's own Cluster CRD, from the module this repository requires,
// so the test hub serves the same v1beta2 API a management cluster does.
func capiCRD(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/cluster-api").Output()
	if err != nil {
		t.Fatalf("locate the cluster-api module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "core", "config", "crd", "bases", "cluster.x-k8s.io_clusters.yaml")
}

// sharedFleet gives t the shared fleet, alongside other tests, and its names in it
// (newTest).
func sharedFleet(t *testing.T, name string) (f *fleetenv.Fleet, hubNS, appNS string) {
	t.Helper()
	f = shared.Get(t)
	hubNS, appNS = newTest(t, f.HubClient(), name)
	return f, hubNS, appNS
}

// exclusiveFleet gives t the shared fleet for itself (see fleetenv.Shared.Exclusive)
// and its names in it (newTest).
func exclusiveFleet(t *testing.T, name string) (f *fleetenv.Fleet, hubNS, appNS string) {
	t.Helper()
	f = shared.Exclusive(t)
	hubNS, appNS = newTest(t, f.HubClient(), name)
	return f, hubNS, appNS
}

// newTest gives a test its names in a fleet: a namespace on the hub for its sources
// and deployments (created here) and a namespace on the spokes for what it deploys,
// both based on name and new at each run (go test -count). When the test ends, its
// deployments are deleted and it waits until their Assignments are gone, so that the
// next test finds the clusters as this one found them.
func newTest(t *testing.T, hub client.Client, name string) (hubNS, appNS string) {
	t.Helper()
	name = env.Unique(name)
	hubNS, appNS = name, "e2e-"+name
	ctx := context.Background()
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubNS}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, kind := range []client.Object{&deliveryv1.Kustomization{}, &deliveryv1.HelmRelease{}} {
			if err := hub.DeleteAllOf(ctx, kind, client.InNamespace(hubNS)); err != nil {
				t.Errorf("delete the deployments of %s: %v", hubNS, err)
				return
			}
		}
		env.Eventually(t, "the Assignments of "+hubNS+" to be gone", func() error {
			var list fleetv1.AssignmentList
			if err := hub.List(ctx, &list, client.MatchingLabels{fleetv1.OwnerNamespaceLabel: hubNS}); err != nil {
				return err
			}
			if len(list.Items) > 0 {
				return fmt.Errorf("%d left, e.g. %s/%s", len(list.Items), list.Items[0].Namespace, list.Items[0].Name)
			}
			return nil
		})
	})
	return hubNS, appNS
}

// byName places a deployment on the named clusters.
func byName(clusters ...string) deliveryv1.Placement {
	return deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "name", Operator: metav1.LabelSelectorOpIn, Values: clusters}}}}
}

// assignmentOf is the Assignment of Kustomization ns/name in cluster's namespace.
func assignmentOf(cluster, ns, name string) *fleetv1.Assignment {
	return &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(cluster),
		Name: fleetv1.AssignmentName(deliveryv1.KustomizationKind, ns, name)}}
}

// target is where a test's objects land on one spoke: the spoke and the test's
// namespace there.
type target struct {
	name string // the spoke, for messages
	c    client.Client
	ns   string
}

func spokeTarget(f *fleetenv.Fleet, name, ns string) target {
	return target{name: name, c: f.SpokeClient(name), ns: ns}
}

// value reads ConfigMap name's value.
func (tg target) value(name string) (string, error) {
	var cm corev1.ConfigMap
	if err := tg.c.Get(context.Background(), types.NamespacedName{Namespace: tg.ns, Name: name}, &cm); err != nil {
		return "", err
	}
	return cm.Data["value"], nil
}

func (tg target) wantValue(t *testing.T, name, value string) {
	t.Helper()
	env.Eventually(t, fmt.Sprintf("ConfigMap %s/%s=%q on %s", tg.ns, name, value, tg.name), func() error {
		got, err := tg.value(name)
		if err != nil {
			return err
		}
		if got != value {
			return fmt.Errorf("value is %q", got)
		}
		return nil
	})
}

func (tg target) wantGone(t *testing.T, name string) {
	t.Helper()
	env.Eventually(t, fmt.Sprintf("ConfigMap %s/%s gone from %s", tg.ns, name, tg.name), func() error {
		_, err := tg.value(name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err=%v)", err)
	})
}

// requestReconcile asks the hub (or, for an Assignment, the agent) to reconcile obj
// now, as `flotilla reconcile` does, and returns the request's token, which the
// controller reports as handled in status.lastHandledReconcileAt.
func requestReconcile(t *testing.T, c client.Client, obj client.Object) string {
	t.Helper()
	token := time.Now().Format(time.RFC3339Nano)
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[meta.ReconcileRequestedAtAnnotation] = token
	obj.SetAnnotations(annotations)
	if err := c.Patch(context.Background(), obj, patch); err != nil {
		t.Fatal(err)
	}
	return token
}
