package agent_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/spoke/apply"
	"github.com/flotilla-dev/flotilla/test/artifactserver"
	"github.com/flotilla-dev/flotilla/test/env"
)

// The agent's tests share one hub API server (with the Flotilla CRDs) and one spoke
// API server that runs workloads (kube-controller-manager and kwok): each test plays
// a cluster of its own, with its own hub namespace, target namespace and agent. No
// hub runs: a test writes Assignments as the hub would, and the artifacts come from
// a stand-in artifact server.
func TestMain(m *testing.M) {
	env.DefaultParallel(4) // the tests wait on the API servers and the agents
	env.Main(m)
}

type planes struct{ hub, spoke *controlplane.ControlPlane }

var shared = env.NewShared(func(t testing.TB) planes {
	cps := env.StartControlPlanes(t, env.Plane{Name: "hub", CRDs: true}, env.Plane{Name: "spoke"})
	env.StartNodes(t, cps[1])
	return planes{hub: cps[0], spoke: cps[1]}
})

// cluster is one test's share of the planes: what a cluster's agent sees.
type cluster struct {
	name  string // the agent's cluster name
	hubNS string // its namespace on the hub, where its Assignments are
	appNS string // where its Assignments apply on the spoke
	hubCP *controlplane.ControlPlane
	spoke *controlplane.ControlPlane
	hub   client.Client
	arts  *artifactserver.Server
}

// newCluster takes a share of the planes for a cluster called name (name-2, -3… at
// the next runs of the test, with go test -count).
func newCluster(t *testing.T, name string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts two API servers, kube-controller-manager and kwok")
	}
	p := shared.Get(t)
	name = env.Unique(name)
	c := &cluster{name: name, hubNS: fleetv1.ClusterNamespace(name), appNS: name + "-demo",
		hubCP: p.hub, spoke: p.spoke, hub: p.hub.Client(), arts: artifactserver.New(t)}
	if err := c.hub.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.hubNS}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// runAgent runs the cluster's agent until the test ends or stop is called; hubCfg
// is how it reaches the hub.
func (c *cluster) runAgent(t *testing.T, hubCfg *rest.Config, change func(*agent.Options)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testWriter{t: t}
	opts := agent.Options{
		ClusterName:       c.name,
		HubConfig:         hubCfg,
		SpokeConfig:       c.spoke.Config(),
		TrustedKeys:       []ed25519.PublicKey{c.arts.PublicKey()},
		StateDir:          t.TempDir(),
		HeartbeatInterval: time.Second,
		ResyncInterval:    2 * time.Second,
		PollInterval:      300 * time.Millisecond,
		Logger:            zap.New(zap.UseDevMode(true), zap.WriteTo(logs)),
	}
	if change != nil {
		change(&opts)
	}
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, opts) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent.Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("agent.Run did not return after its context was cancelled")
			}
			logs.stop()
		})
	}
	t.Cleanup(stop)
	return stop
}

// newAssignment creates an Assignment of art in the cluster's hub namespace.
func (c *cluster) newAssignment(t *testing.T, name string, art fleetv1.SignedArtifact, change func(*fleetv1.Assignment)) types.NamespacedName {
	t.Helper()
	a := &fleetv1.Assignment{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.hubNS, Name: name, Finalizers: []string{fleetv1.AssignmentFinalizer}},
		Spec: fleetv1.AssignmentSpec{
			Owner:           fleetv1.DeploymentReference{APIVersion: "delivery.flotilla.dev/v1alpha1", Kind: "Kustomization", Namespace: "default", Name: name},
			Artifact:        art,
			TargetNamespace: c.appNS,
			Prune:           true,
		},
	}
	if change != nil {
		change(a)
	}
	c.arts.Sign(c.name, a)
	if err := c.hub.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return client.ObjectKeyFromObject(a)
}

// namespace is the manifest of the cluster's target namespace.
func (c *cluster) namespace() string {
	return "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + c.appNS + "\n"
}

func TestAgent(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "agent")
	hub, spoke, arts, appNS, hubNS := c.hub, c.spoke.Client(), c.arts, c.appNS, c.hubNS
	ctx := context.Background()
	c.runAgent(t, c.hubCP.Config(), func(o *agent.Options) { o.ResyncInterval, o.PollInterval = time.Hour, 0 })

	v1 := arts.Add("main@sha1:1111111111111111111111111111111111111111", map[string]string{
		"manifests.yaml": crd + c.namespace() + configMap("settings", "one") + configMap("extra", "x") +
			configMap("shared", "s") + service + widget,
	})
	key := c.newAssignment(t, "app", v1, nil)

	t.Run("applies an artifact", func(t *testing.T) {
		a := waitReady(t, hub, key, v1.Digest)
		// The hub gets the count; the list stays in the agent's record on the spoke.
		if entries := c.recorded(t, a); a.Status.Inventory != 7 || len(entries) != 7 || len(a.Status.Entries) != 0 {
			t.Errorf("inventory %d, recorded %v, hub entries %v; want 7, 7 and none", a.Status.Inventory, entries, a.Status.Entries)
		}
		if a.Status.AppliedRevision != v1.Revision || a.Status.ObservedGeneration != a.Generation {
			t.Errorf("status %+v", a.Status)
		}
		ready := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
		if want := "applied revision " + v1.Revision + ": 7 objects (7 created)"; ready.Message != want || a.Status.Message != want {
			t.Errorf("Ready message %q, status message %q; want %q", ready.Message, a.Status.Message, want)
		}
		for _, ref := range []apply.ObjectRef{
			{Version: "v1", Kind: "Namespace", Name: appNS},
			{Version: "v1", Kind: "ConfigMap", Namespace: appNS, Name: "settings"},
			{Version: "v1", Kind: "Service", Namespace: appNS, Name: "web"},
			{Group: "example.com", Version: "v1", Kind: "Widget", Namespace: appNS, Name: "w"},
		} {
			u := get(t, spoke, ref)
			if u.GetLabels()[apply.ManagedByLabel] != apply.ManagedByValue || u.GetAnnotations()[apply.AssignmentAnnotation] != hubNS+"/app" {
				t.Errorf("%s is not marked: labels %v, annotations %v", ref, u.GetLabels(), u.GetAnnotations())
			}
			// One field manager per deployment, named after its Assignment.
			if manager := "flotilla/app"; !appliedBy(u, manager) {
				t.Errorf("%s has no server-side apply entry of %q: %v", ref, manager, u.GetManagedFields())
			}
		}
		// A success is in the status only: no Event (checked below, once a failure's
		// Event has come through the same recorder).
	})

	t.Run("a new revision prunes what it dropped, and only what is ours", func(t *testing.T) {
		// Someone else takes over "shared": the agent must not delete it.
		shared := get(t, spoke, apply.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: appNS, Name: "shared"})
		shared.SetAnnotations(map[string]string{apply.AssignmentAnnotation: "elsewhere/other"})
		if err := spoke.Update(ctx, shared); err != nil {
			t.Fatal(err)
		}
		v2 := arts.Add("main@sha1:2222222222222222222222222222222222222222", map[string]string{
			"manifests.yaml": crd + c.namespace() + configMap("settings", "two") + service + widget,
		})
		c.setArtifact(t, key, v2)
		a := waitReady(t, hub, key, v2.Digest)
		if want := "applied revision " + v2.Revision + ": 5 objects (1 configured, 4 unchanged), 1 pruned"; a.Status.Message != want {
			t.Errorf("message %q, want %q", a.Status.Message, want)
		}
		if a.Status.Inventory != 5 {
			t.Errorf("inventory %d, want 5", a.Status.Inventory)
		}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "extra"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			t.Errorf("dropped ConfigMap extra: %v, want NotFound", err)
		}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "shared"}, &corev1.ConfigMap{}); err != nil {
			t.Errorf("ConfigMap shared, which is no longer ours, was touched: %v", err)
		}
		cm := &corev1.ConfigMap{}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "settings"}, cm); err != nil || cm.Data["value"] != "two" {
			t.Errorf("settings %v, %v; want value two", cm.Data, err)
		}
	})
	applied := current(t, hub, key)

	t.Run("a bad signature applies nothing", func(t *testing.T) {
		other, _ := artifact.GenerateKey()
		v3 := arts.Add("main@sha1:3333333333333333333333333333333333333333", map[string]string{
			"manifests.yaml": c.namespace() + configMap("settings", "three"),
		})
		c.setArtifact(t, key, v3, other)
		a := waitCondition(t, hub, key, metav1.ConditionFalse, meta.VerificationFailedReason)
		ready := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
		if !strings.Contains(ready.Message, "signature does not verify against any trusted key") {
			t.Errorf("message %q does not say what failed", ready.Message)
		}
		if !apimeta.IsStatusConditionTrue(a.Status.Conditions, meta.StalledCondition) {
			t.Errorf("not Stalled: %v", a.Status.Conditions)
		}
		keepsPrevious(t, a, applied)
		if n := arts.Downloads(v3); n != 0 {
			t.Errorf("an artifact whose signature does not verify was downloaded %d times", n)
		}
		c.expectConfigMapValue(t, "settings", "two")
		c.expectEvent(t, "app", corev1.EventTypeWarning, meta.VerificationFailedReason)
		// Two revisions were applied before this failure; neither left an Event.
		c.expectNoEvent(t, "app", corev1.EventTypeNormal, meta.SucceededReason)
	})

	t.Run("broken manifests apply nothing", func(t *testing.T) {
		v4 := arts.Add("main@sha1:4444444444444444444444444444444444444444", map[string]string{
			"manifests.yaml": configMap("settings", "four") + "---\nkind: [\n",
		})
		c.setArtifact(t, key, v4)
		a := waitCondition(t, hub, key, metav1.ConditionFalse, meta.ApplyFailedReason)
		if !strings.Contains(a.Status.Message, "manifests.yaml: document 2") {
			t.Errorf("message %q does not name the file and document", a.Status.Message)
		}
		keepsPrevious(t, a, applied)
		c.expectConfigMapValue(t, "settings", "two")
	})

	t.Run("an object the server refuses fails the apply and keeps the rest", func(t *testing.T) {
		v5 := arts.Add("main@sha1:5555555555555555555555555555555555555555", map[string]string{
			"manifests.yaml": c.namespace() + configMap("settings", "five") + configMap("added", "a") +
				"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  ports:\n  - port: 99999\n",
		})
		c.setArtifact(t, key, v5)
		a := waitCondition(t, hub, key, metav1.ConditionFalse, meta.ApplyFailedReason)
		if !strings.Contains(a.Status.Message, "Service/"+appNS+"/broken") || !strings.Contains(a.Status.Message, "99999") {
			t.Errorf("message %q does not name the object and the server's error", a.Status.Message)
		}
		if a.Status.AppliedDigest != applied.Status.AppliedDigest {
			t.Errorf("appliedDigest moved to %s on a failed apply", a.Status.AppliedDigest)
		}
		// What was applied is tracked on top of what was there before.
		if entries := c.recorded(t, a); !hasEntry(entries, appNS+"_added__ConfigMap") || !hasEntry(entries, "_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition") {
			t.Errorf("recorded entries %v lost track of objects", entries)
		}
		c.expectConfigMapValue(t, "settings", "five")
	})

	t.Run("an impersonated service account without rights is told so", func(t *testing.T) {
		v := arts.Add("main@sha1:6666666666666666666666666666666666666666", map[string]string{
			"manifests.yaml": configMap("tenant", "t"),
		})
		tenant := &fleetv1.Assignment{
			ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: "tenant"},
			Spec: fleetv1.AssignmentSpec{
				Owner:              fleetv1.DeploymentReference{APIVersion: "delivery.flotilla.dev/v1alpha1", Kind: "Kustomization", Namespace: "team", Name: "tenant"},
				Artifact:           v,
				TargetNamespace:    appNS,
				ServiceAccountName: "deployer",
			},
		}
		c.arts.Sign(c.name, tenant)
		if err := hub.Create(ctx, tenant); err != nil {
			t.Fatal(err)
		}
		a := waitCondition(t, hub, client.ObjectKeyFromObject(tenant), metav1.ConditionFalse, meta.ApplyFailedReason)
		if !strings.Contains(a.Status.Message, "as system:serviceaccount:"+appNS+":deployer, which is not allowed") {
			t.Errorf("message %q", a.Status.Message)
		}
	})

	t.Run("the lease is renewed with the versions", func(t *testing.T) {
		first := c.lease(t)
		if first.Spec.HolderIdentity == nil || *first.Spec.HolderIdentity != c.name {
			t.Errorf("holder %v, want %s", first.Spec.HolderIdentity, c.name)
		}
		if got := first.Annotations[fleetv1.AgentVersionAnnotation]; got != version.Version {
			t.Errorf("agent version %q, want %q", got, version.Version)
		}
		if got := first.Annotations[fleetv1.KubernetesVersionAnnotation]; got == "" {
			t.Errorf("no Kubernetes version on the lease: %v", first.Annotations)
		}
		env.Eventually(t, "lease renewal", func() error {
			l := c.lease(t)
			if !l.Spec.RenewTime.After(first.Spec.RenewTime.Time) {
				return fmt.Errorf("renewTime still %s", l.Spec.RenewTime)
			}
			return nil
		})
	})

	t.Run("deleting the Assignment prunes everything it applied", func(t *testing.T) {
		before := current(t, hub, key)
		if err := hub.Delete(ctx, before); err != nil {
			t.Fatal(err)
		}
		a := waitReleased(t, hub, key)
		released := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReleasedCondition)
		if !strings.HasPrefix(released.Message, "pruned ") || a.Status.Inventory != 0 {
			t.Errorf("Released %q, inventory %d", released.Message, a.Status.Inventory)
		}
		for _, name := range []string{"settings", "added"} {
			if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: name}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
				t.Errorf("ConfigMap %s: %v, want NotFound", name, err)
			}
		}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "shared"}, &corev1.ConfigMap{}); err != nil {
			t.Errorf("ConfigMap shared, not ours, was deleted: %v", err)
		}
		// The spoke runs no namespace controller (env.StartNodes), so a deleted
		// Namespace stays Terminating and what is left in it shows.
		ns := &corev1.Namespace{}
		if err := spoke.Get(ctx, types.NamespacedName{Name: appNS}, ns); err == nil && ns.DeletionTimestamp.IsZero() {
			t.Errorf("Namespace %s was not deleted", appNS)
		}
		// The hub removes the finalizer; the agent never does.
		if !controllerHasFinalizer(a) {
			t.Errorf("the agent removed the finalizer")
		}
		a.Finalizers = nil
		if err := hub.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
	})
}

// Manifests of the test artifacts.
const (
	crd = `---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`
	widget = `---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
spec:
  size: 3
`
	service = `---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
`
)

func configMap(name, value string) string {
	return fmt.Sprintf("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  value: %q\n", name, value)
}

func current(t *testing.T, hub client.Client, key types.NamespacedName) *fleetv1.Assignment {
	t.Helper()
	a := &fleetv1.Assignment{}
	if err := hub.Get(context.Background(), key, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// setArtifact points the Assignment at art, signed as the hub signs, or with signer
// when one is given.
func (c *cluster) setArtifact(t *testing.T, key types.NamespacedName, art fleetv1.SignedArtifact, signer ...ed25519.PrivateKey) {
	t.Helper()
	a := current(t, c.hub, key)
	a.Spec.Artifact = art
	if len(signer) > 0 {
		artifactserver.SignWith(t, signer[0], c.name, a)
	} else {
		c.arts.Sign(c.name, a)
	}
	if err := c.hub.Update(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

func waitReady(t *testing.T, hub client.Client, key types.NamespacedName, digest string) *fleetv1.Assignment {
	t.Helper()
	var a *fleetv1.Assignment
	env.Eventually(t, "Ready=True for "+digest, func() error {
		a = current(t, hub, key)
		c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
		if a.Status.AppliedDigest != digest || c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != a.Generation {
			return fmt.Errorf("status %+v", a.Status)
		}
		return nil
	})
	return a
}

func waitCondition(t *testing.T, hub client.Client, key types.NamespacedName, status metav1.ConditionStatus, reason string) *fleetv1.Assignment {
	t.Helper()
	var a *fleetv1.Assignment
	env.Eventually(t, fmt.Sprintf("Ready=%s reason %s", status, reason), func() error {
		a = current(t, hub, key)
		c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != a.Generation {
			return fmt.Errorf("conditions %+v", a.Status.Conditions)
		}
		return nil
	})
	return a
}

func waitReleased(t *testing.T, hub client.Client, key types.NamespacedName) *fleetv1.Assignment {
	t.Helper()
	var a *fleetv1.Assignment
	env.Eventually(t, "Released=True", func() error {
		a = current(t, hub, key)
		if !apimeta.IsStatusConditionTrue(a.Status.Conditions, meta.ReleasedCondition) {
			return fmt.Errorf("conditions %+v", a.Status.Conditions)
		}
		return nil
	})
	return a
}

func keepsPrevious(t *testing.T, a, previous *fleetv1.Assignment) {
	t.Helper()
	if a.Status.AppliedDigest != previous.Status.AppliedDigest || a.Status.Inventory != previous.Status.Inventory {
		t.Errorf("status moved from %s (%d objects) to %s (%d objects)", previous.Status.AppliedDigest, previous.Status.Inventory, a.Status.AppliedDigest, a.Status.Inventory)
	}
}

func hasEntry(entries []fleetv1.InventoryEntry, id string) bool {
	for _, e := range entries {
		if e.ID == id {
			return true
		}
	}
	return false
}

func controllerHasFinalizer(a *fleetv1.Assignment) bool {
	for _, f := range a.Finalizers {
		if f == fleetv1.AssignmentFinalizer {
			return true
		}
	}
	return false
}

func get(t *testing.T, c client.Client, ref apply.ObjectRef) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: ref.Group, Version: ref.Version, Kind: ref.Kind})
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, u); err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return u
}

func appliedBy(u *unstructured.Unstructured, manager string) bool {
	for _, m := range u.GetManagedFields() {
		if m.Manager == manager && m.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

func (c *cluster) expectConfigMapValue(t *testing.T, name, value string) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := c.spoke.Client().Get(context.Background(), types.NamespacedName{Namespace: c.appNS, Name: name}, cm); err != nil || cm.Data["value"] != value {
		t.Errorf("ConfigMap %s: %v, %v; want value %q", name, cm.Data, err, value)
	}
}

func (c *cluster) expectEvent(t *testing.T, name, typ, reason string) {
	t.Helper()
	env.Eventually(t, fmt.Sprintf("%s event %s on %s", typ, reason, name), func() error {
		list := &eventsv1.EventList{}
		if err := c.hub.List(context.Background(), list, client.InNamespace(c.hubNS)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Type == typ && e.Reason == reason {
				return nil
			}
		}
		return fmt.Errorf("%d events, none matches", len(list.Items))
	})
}

// expectNoEvent fails if the hub holds an Event of that type and reason on the
// Assignment; call it after an Event the agent recorded later has arrived.
func (c *cluster) expectNoEvent(t *testing.T, name, typ, reason string) {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := c.hub.List(context.Background(), list, client.InNamespace(c.hubNS)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Type == typ && e.Reason == reason {
			t.Errorf("unexpected %s Event %s on %s: %s", typ, reason, name, e.Note)
		}
	}
}

func (c *cluster) lease(t *testing.T) *coordinationv1.Lease {
	t.Helper()
	l := &coordinationv1.Lease{}
	env.Eventually(t, "agent lease", func() error {
		return c.hub.Get(context.Background(), types.NamespacedName{Namespace: c.hubNS, Name: fleetv1.AgentLeaseName}, l)
	})
	return l
}

// testWriter sends the agent's log to the test's log, shown on failure or with -v,
// until the test ends.
type testWriter struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}
