package agent_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/test/env"
)

func readyCondition(a *fleetv1.Assignment) *metav1.Condition {
	if c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition); c != nil {
		return c
	}
	return &metav1.Condition{}
}

func deployment(name string, nodeSelector string) string {
	s := fmt.Sprintf(`---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  progressDeadlineSeconds: 600
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: web
        image: nginx:1.27
`, name)
	if nodeSelector != "" {
		s += "      nodeSelector: {" + nodeSelector + "}\n"
	}
	return s
}

func job(name, image, annotations string) string {
	return fmt.Sprintf(`---
apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  annotations: {%s}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: run
        image: %s
`, name, annotations, image)
}

// TestWaitAndHealthChecks runs the agent against a spoke that really runs workloads
// (kube-controller-manager and kwok): Ready waits for what was applied, and for the
// objects spec.healthChecks names, to be healthy, and fails after the timeout.
func TestWaitAndHealthChecks(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "health")
	hub, spoke, arts, appNS := c.hub, c.spoke.Client(), c.arts, c.appNS
	ctx := context.Background()
	c.runAgent(t, c.hubCP.Config(), nil)

	t.Run("wait: a Deployment that becomes Available makes Ready", func(t *testing.T) {
		art := arts.Add("web@1", map[string]string{"m.yaml": c.namespace() + deployment("web", "")})
		key := c.newAssignment(t, "web", art, func(a *fleetv1.Assignment) { a.Spec.Wait = true })
		sawWaiting := false
		env.Eventually(t, "web Ready", func() error {
			a := current(t, hub, key)
			c := readyCondition(a)
			if c.Status == metav1.ConditionUnknown && strings.HasPrefix(c.Message, "waiting for Deployment/"+appNS+"/web: ") &&
				a.Status.AppliedDigest == art.Digest {
				sawWaiting = true
			}
			if c.Status != metav1.ConditionTrue || a.Status.AppliedDigest != art.Digest {
				return fmt.Errorf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
			}
			return nil
		})
		if !sawWaiting {
			t.Errorf("never saw Ready=Unknown \"waiting for Deployment/%s/web: …\" with the artifact applied", appNS)
		}
		d := &appsv1.Deployment{}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "web"}, d); err != nil || d.Status.AvailableReplicas != 1 {
			t.Errorf("Deployment: %v, %+v", err, d.Status)
		}
	})

	t.Run("wait: a Deployment that cannot schedule fails the health check after the timeout", func(t *testing.T) {
		art := arts.Add("stuck@1", map[string]string{"m.yaml": deployment("stuck", "pool: none")})
		key := c.newAssignment(t, "stuck", art, func(a *fleetv1.Assignment) {
			a.Spec.Wait = true
			a.Spec.Timeout = &metav1.Duration{Duration: 10 * time.Second}
		})
		began := time.Now()
		a := waitCondition(t, hub, key, metav1.ConditionFalse, meta.HealthCheckFailedReason)
		if time.Since(began) < 9*time.Second {
			t.Errorf("failed after %s, before the timeout", time.Since(began))
		}
		msg := readyCondition(a).Message
		if !strings.Contains(msg, "Deployment/"+appNS+"/stuck") || !strings.Contains(msg, "Available: 0/1") {
			t.Errorf("message %q does not name the Deployment and why", msg)
		}
		if a.Status.AppliedDigest != art.Digest {
			t.Errorf("appliedDigest %q: applied is not ready, but it is applied", a.Status.AppliedDigest)
		}
		c.expectEvent(t, "stuck", corev1.EventTypeWarning, meta.HealthCheckFailedReason)
	})

	t.Run("healthChecks: a named object must be healthy", func(t *testing.T) {
		art := arts.Add("hc@1", map[string]string{"m.yaml": configMap("hc", "v")})
		key := c.newAssignment(t, "hc", art, func(a *fleetv1.Assignment) {
			a.Spec.HealthChecks = []meta.ObjectReference{{APIVersion: "apps/v1", Kind: "Deployment", Namespace: appNS, Name: "stuck"}}
			a.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Second}
		})
		a := waitCondition(t, hub, key, metav1.ConditionFalse, meta.HealthCheckFailedReason)
		if msg := readyCondition(a).Message; !strings.Contains(msg, "Deployment/"+appNS+"/stuck") {
			t.Errorf("message %q", msg)
		}
	})

}

// TestApplyEngine runs the agent for drift, apply options, deletion policies,
// dependencies and a hub that goes away.
func TestApplyEngine(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "engine")
	hub, spoke, arts, appNS := c.hub, c.spoke.Client(), c.arts, c.appNS
	ctx := context.Background()
	// The agent reaches the hub through a proxy that the offline test closes.
	hubURL, err := url.Parse(c.hubCP.URL())
	if err != nil {
		t.Fatal(err)
	}
	hubLink := newProxy(t, hubURL.Host)
	agentHub := c.hubCP.Config()
	agentHub.Host = "https://" + hubLink.addr
	stateDir := t.TempDir()
	stopAgent := c.runAgent(t, agentHub, func(o *agent.Options) { o.StateDir = stateDir })
	// The target namespace: none of this test's artifacts brings it.
	if err := spoke.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}}); err != nil {
		t.Fatal(err)
	}

	t.Run("drift: a hand edit is restored and reported", func(t *testing.T) {
		art := arts.Add("cfg@1", map[string]string{"m.yaml": configMap("settings", "one") + configMap("gone", "g") +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ignored\n  annotations: {fleet.flotilla.dev/reconcile: disabled}\ndata: {value: i}\n" +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seeded\n  annotations: {fleet.flotilla.dev/ssa: IfNotPresent}\ndata: {value: s}\n"})
		key := c.newAssignment(t, "cfg", art, nil)
		a := waitReady(t, hub, key, art.Digest)
		if a.Status.Inventory != 3 {
			t.Errorf("inventory %d, want 3 (the disabled object is not ours)", a.Status.Inventory)
		}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "ignored"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap ignored (reconcile: disabled): %v, want NotFound", err)
		}

		for _, name := range []string{"settings", "seeded"} {
			cm := &corev1.ConfigMap{}
			if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: name}, cm); err != nil {
				t.Fatal(err)
			}
			cm.Data["value"] = "by hand"
			if err := spoke.Update(ctx, cm, client.FieldOwner("kubectl-edit")); err != nil {
				t.Fatal(err)
			}
		}
		env.Eventually(t, "settings restored", func() error {
			cm := &corev1.ConfigMap{}
			if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "settings"}, cm); err != nil {
				return err
			}
			if cm.Data["value"] != "one" {
				return fmt.Errorf("value %q", cm.Data["value"])
			}
			return nil
		})
		env.Eventually(t, "drift reported", func() error {
			a := current(t, hub, key)
			if d := a.Status.Drift; d == nil || d.Corrections < 1 || d.LastObject != "ConfigMap/"+appNS+"/settings" || d.LastTime == nil {
				return fmt.Errorf("drift %+v", a.Status.Drift)
			}
			return nil
		})
		c.expectEvent(t, "cfg", corev1.EventTypeWarning, meta.DriftCorrectedReason)
		c.expectConfigMapValue(t, "seeded", "by hand")

		// Deleted by hand: it comes back.
		if err := spoke.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "gone"}}); err != nil {
			t.Fatal(err)
		}
		env.Eventually(t, "gone re-created", func() error {
			return spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "gone"}, &corev1.ConfigMap{})
		})
		env.Eventually(t, "deletion reported", func() error {
			a := current(t, hub, key)
			if d := a.Status.Drift; d == nil || d.LastObject != "ConfigMap/"+appNS+"/gone" {
				return fmt.Errorf("drift %+v", a.Status.Drift)
			}
			return nil
		})
	})

	t.Run("drift: Warn reports and leaves the edit", func(t *testing.T) {
		art := arts.Add("warn@1", map[string]string{"m.yaml": configMap("warned", "one")})
		key := c.newAssignment(t, "warn", art, func(a *fleetv1.Assignment) {
			a.Spec.DriftDetection = &meta.DriftDetection{Mode: meta.DriftWarn}
		})
		waitReady(t, hub, key, art.Digest)
		cm := &corev1.ConfigMap{}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "warned"}, cm); err != nil {
			t.Fatal(err)
		}
		cm.Data["value"] = "by hand"
		if err := spoke.Update(ctx, cm, client.FieldOwner("kubectl-edit")); err != nil {
			t.Fatal(err)
		}
		var found int64
		env.Eventually(t, "Drifted=True", func() error {
			a := current(t, hub, key)
			c := apimeta.FindStatusCondition(a.Status.Conditions, meta.DriftedCondition)
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != meta.DriftDetectedReason ||
				!strings.Contains(c.Message, "ConfigMap/"+appNS+"/warned (.data.value)") {
				return fmt.Errorf("Drifted %+v", c)
			}
			if a.Status.Drift == nil || a.Status.Drift.LastObject != "ConfigMap/"+appNS+"/warned" {
				return fmt.Errorf("drift %+v", a.Status.Drift)
			}
			found = a.Status.Drift.Corrections
			return nil
		})
		// Two resyncs later, still as edited: each resync's drift check finds the
		// edit again and counts it in status.drift.
		env.Eventually(t, "two more drift checks", func() error {
			if d := current(t, hub, key).Status.Drift; d.Corrections < found+2 {
				return fmt.Errorf("drift %+v, found %d times before", d, found)
			}
			return nil
		})
		cm = &corev1.ConfigMap{}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "warned"}, cm); err != nil {
			t.Fatal(err)
		}
		if cm.Data["value"] != "by hand" {
			t.Errorf("value %q after two drift checks in Warn mode, want the edit left", cm.Data["value"])
		}
		c.expectEvent(t, "warn", corev1.EventTypeWarning, meta.DriftDetectedReason)
	})

	t.Run("force: immutable fields are re-created when asked", func(t *testing.T) {
		v1 := arts.Add("jobs@1", map[string]string{"m.yaml": job("plain", "busybox:1", "") + job("forced", "busybox:1", "fleet.flotilla.dev/force: enabled")})
		key := c.newAssignment(t, "jobs", v1, nil)
		waitReady(t, hub, key, v1.Digest)
		uid := func(name string) types.UID {
			j := &batchv1.Job{}
			if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: name}, j); err != nil {
				t.Fatal(err)
			}
			return j.UID
		}
		plain, forced := uid("plain"), uid("forced")

		v2 := arts.Add("jobs@2", map[string]string{"m.yaml": job("plain", "busybox:2", "") + job("forced", "busybox:2", "fleet.flotilla.dev/force: enabled")})
		c.setArtifact(t, key, v2)
		a := waitCondition(t, hub, key, metav1.ConditionFalse, meta.ApplyFailedReason)
		if msg := readyCondition(a).Message; !strings.Contains(msg, "Job/"+appNS+"/plain") || !strings.Contains(msg, "immutable") {
			t.Errorf("message %q does not name the Job and the immutable field", msg)
		}
		if uid("forced") == forced {
			t.Error("Job forced (fleet.flotilla.dev/force: enabled) was not re-created")
		}
		if uid("plain") != plain {
			t.Error("Job plain was re-created without force")
		}

		a = current(t, hub, key)
		a.Spec.Force = true
		c.arts.Sign(c.name, a)
		if err := hub.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		a = waitReady(t, hub, key, v2.Digest)
		if uid("plain") == plain {
			t.Error("Job plain was not re-created with spec.force")
		}
		if !strings.Contains(a.Status.Message, "replaced") {
			t.Errorf("message %q does not say what was replaced", a.Status.Message)
		}
	})

	t.Run("dependsOn: nothing is applied before the dependency is Ready", func(t *testing.T) {
		app := arts.Add("app@1", map[string]string{"m.yaml": configMap("app", "a")})
		key := c.newAssignment(t, "app", app, func(a *fleetv1.Assignment) { a.Spec.DependsOn = []string{"base"} })
		a := waitCondition(t, hub, key, metav1.ConditionUnknown, meta.DependencyNotReadyReason)
		if msg := readyCondition(a).Message; msg != "waiting for base: it does not exist" {
			t.Errorf("message %q", msg)
		}
		if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "app"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap app applied before its dependency: %v", err)
		}
		base := arts.Add("base@1", map[string]string{"m.yaml": configMap("base", "b")})
		c.newAssignment(t, "base", base, nil)
		waitReady(t, hub, key, app.Digest)
		c.expectConfigMapValue(t, "app", "a")
	})

	t.Run("deletionPolicy Orphan keeps the objects", func(t *testing.T) {
		art := arts.Add("orphan@1", map[string]string{"m.yaml": configMap("orphaned", "o")})
		key := c.newAssignment(t, "orphan", art, func(a *fleetv1.Assignment) { a.Spec.DeletionPolicy = meta.DeletionPolicyOrphan })
		waitReady(t, hub, key, art.Digest)
		if err := hub.Delete(ctx, current(t, hub, key)); err != nil {
			t.Fatal(err)
		}
		a := waitReleased(t, hub, key)
		if msg := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReleasedCondition).Message; msg != "orphaned 1 object" {
			t.Errorf("Released message %q", msg)
		}
		c.expectConfigMapValue(t, "orphaned", "o")
		a.Finalizers = nil
		if err := hub.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("offline: the spoke is kept as declared while the hub is away, also across a restart", func(t *testing.T) {
		art := arts.Add("offline@1", map[string]string{"m.yaml": configMap("kept", "k")})
		key := c.newAssignment(t, "offline", art, nil)
		waitReady(t, hub, key, art.Digest)
		env.Eventually(t, "the state Secret", func() error {
			secs := &corev1.SecretList{}
			if err := spoke.List(ctx, secs, client.InNamespace(fleetv1.SystemNamespace), client.MatchingLabels{agent.StateLabel: c.name}); err != nil {
				return err
			}
			if len(secs.Items) < 5 {
				return fmt.Errorf("%d state Secrets", len(secs.Items))
			}
			return nil
		})

		hubLink.close()
		stopAgent()
		// A new agent that never saw the hub: it has only its records on the spoke.
		stopAgent = c.runAgent(t, agentHub, func(o *agent.Options) { o.StateDir = stateDir })
		for _, name := range []string{"kept", "settings"} {
			if err := spoke.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name}}); err != nil {
				t.Fatal(err)
			}
		}
		env.EventuallyWithin(t, 30*time.Second, "re-created while the hub is away", func() error {
			for _, name := range []string{"kept", "settings"} {
				if err := spoke.Get(ctx, types.NamespacedName{Namespace: appNS, Name: name}, &corev1.ConfigMap{}); err != nil {
					return err
				}
			}
			return nil
		})
		c.expectConfigMapValue(t, "app", "a")
		c.expectConfigMapValue(t, "orphaned", "o")

		hubLink.open()
		v2 := arts.Add("offline@2", map[string]string{"m.yaml": configMap("kept", "k2")})
		c.setArtifact(t, key, v2)
		waitReady(t, hub, key, v2.Digest)
		c.expectConfigMapValue(t, "kept", "k2")
		c.expectConfigMapValue(t, "settings", "one")
	})
}
