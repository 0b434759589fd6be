package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
)

// spokeNamespace creates ns on the named spokes (the artifacts of these tests hold
// no Namespace, so that namePrefix has only the app's objects to rename).
func spokeNamespace(t *testing.T, f *fleetenv.Fleet, ns string, spokes ...string) {
	t.Helper()
	for _, s := range spokes {
		c := f.SpokeClient(s)
		if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	}
}

// TestKustomizationFields: namePrefix, nameSuffix, commonMetadata, patches (strategic
// merge and JSON 6902 with a target), images and components do their kustomize
// work, and the result lands on both clusters.
func TestKustomizationFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "kfields")
	hub := fleet.HubClient()
	spokes := []string{"spoke-1", "spoke-2"}
	spokeNamespace(t, fleet, appNS, spokes...)
	deployment := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %s
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        envFrom:
        - configMapRef: {name: settings}
`, appNS)
	gitSource(t, hub, ns, "app", map[string]string{
		"apps/web/kustomization.yaml":         kustomization("deploy.yaml", "settings.yaml"),
		"apps/web/deploy.yaml":                deployment,
		"apps/web/settings.yaml":              configMap(appNS, "settings", "base"),
		"components/extra/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [extra.yaml]\n",
		"components/extra/extra.yaml":         configMap(appNS, "extra", "from-component"),
	})
	ks := deploy(t, hub, ns, "app", "app", "./apps/web", func(s *deliveryv1.KustomizationSpec) {
		s.Placement = byName(spokes...)
		s.NamePrefix, s.NameSuffix = "p-", "-s"
		s.CommonMetadata = &deliveryv1.CommonMetadata{
			Labels:      map[string]string{"team": "payments"},
			Annotations: map[string]string{"example.com/owner": "payments@example.com"},
		}
		s.Patches = []deliveryv1.Patch{
			{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n",
				Target: &deliveryv1.PatchSelector{Group: "apps", Kind: "Deployment", LabelSelector: "app=web"}},
			{Patch: `[{"op": "replace", "path": "/data/value", "value": "patched"}]`,
				Target: &deliveryv1.PatchSelector{Version: "v1", Kind: "ConfigMap", Name: "^settings$"}},
		}
		s.Images = []deliveryv1.Image{{Name: "nginx", NewName: "registry.example/nginx", NewTag: "1.27"}}
		s.Components = []string{"../../components/extra"}
	})
	logOnFailure(t, hub, ks)
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, "")
	for _, name := range spokes {
		tg := spokeTarget(fleet, name, appNS)
		tg.wantValue(t, "p-settings-s", "patched")     // prefix, suffix, JSON 6902 on its target
		tg.wantValue(t, "p-extra-s", "from-component") // component, not patched (not the target)
		var cm corev1.ConfigMap
		if err := tg.c.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "p-extra-s"}, &cm); err != nil {
			t.Fatal(err)
		}
		if cm.Labels["team"] != "payments" || cm.Annotations["example.com/owner"] != "payments@example.com" {
			t.Errorf("%s: common metadata missing from ConfigMap: labels %v annotations %v", name, cm.Labels, cm.Annotations)
		}
		var d appsv1.Deployment
		if err := tg.c.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "p-web-s"}, &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := d.Spec.Template.Spec.Containers[0]
		for _, check := range []struct{ what, got, want string }{
			{"replicas (strategic merge patch)", fmt.Sprint(*d.Spec.Replicas), "2"},
			{"image", c.Image, "registry.example/nginx:1.27"},
			{"renamed reference", c.EnvFrom[0].ConfigMapRef.Name, "p-settings-s"},
			{"label", d.Labels["team"], "payments"},
			{"selector left alone", d.Spec.Selector.MatchLabels["team"], ""},
		} {
			if check.got != check.want {
				t.Errorf("%s: Deployment %s is %q, want %q", name, check.what, check.got, check.want)
			}
		}
		// The unprefixed names were never applied.
		if _, err := tg.value("settings"); !apierrors.IsNotFound(err) {
			t.Errorf("%s: unprefixed ConfigMap settings: %v", name, err)
		}
	}
}

// TestKustomizationFieldsRefused: a component outside the source, a key the agent
// keeps for itself and a CEL expression that does not compile are Ready=False and
// Stalled with the reason, and the Assignments stay as they were.
func TestKustomizationFieldsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "kfieldsbad")
	hub := fleet.HubClient()
	spokeNamespace(t, fleet, appNS, "spoke-1")
	gitSource(t, hub, ns, "app", map[string]string{
		"apps/web/kustomization.yaml": kustomization("a.yaml"),
		"apps/web/a.yaml":             configMap(appNS, "a", "good"),
	})
	ks := deploy(t, hub, ns, "app", "app", "./apps/web", func(s *deliveryv1.KustomizationSpec) { s.Placement = byName("spoke-1") })
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, "")
	good := waitAssignmentFor(t, hub, "spoke-1", ns, "app", wantCondition(meta.ReadyCondition, metav1.ConditionTrue, meta.SucceededReason))

	for _, tc := range []struct {
		name   string
		edit   func(*deliveryv1.KustomizationSpec)
		reason string
		says   string
	}{
		{"component outside the source", func(s *deliveryv1.KustomizationSpec) { s.Components = []string{"../../../../etc"} },
			meta.InvalidOverlayReason, "outside the source artifact"},
		{"agent's annotation", func(s *deliveryv1.KustomizationSpec) {
			s.CommonMetadata = &deliveryv1.CommonMetadata{Annotations: map[string]string{"fleet.flotilla.dev/assignment": "someone-else"}}
		}, meta.InvalidOverlayReason, "flotilla.dev domain"},
		{"bad CEL", func(s *deliveryv1.KustomizationSpec) {
			s.HealthCheckExprs = []meta.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap", Current: "data.value =="}}
		}, meta.InvalidHealthCheckExprReason, "healthCheckExprs[0] (v1 ConfigMap) current"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := currentKustomization(t, hub, ks)
			patch := client.MergeFrom(cur.DeepCopy())
			tc.edit(&cur.Spec)
			if err := hub.Patch(ctx, cur, patch); err != nil {
				t.Fatal(err)
			}
			env.WaitFor(t, hub, cur, func(k *deliveryv1.Kustomization) error {
				r := conditions.Get(k, meta.ReadyCondition)
				if r == nil || r.Status != metav1.ConditionFalse || r.Reason != tc.reason || !strings.Contains(r.Message, tc.says) {
					return fmt.Errorf("Ready is %+v", r)
				}
				if !conditions.IsTrue(k, meta.StalledCondition) {
					return fmt.Errorf("not Stalled")
				}
				return nil
			})
			a := assignmentOf("spoke-1", ns, "app")
			if err := hub.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
				t.Fatal(err)
			}
			if a.ResourceVersion != good.ResourceVersion && a.Spec.Artifact.Digest != good.Spec.Artifact.Digest {
				t.Errorf("the Assignment changed: digest %s, was %s", a.Spec.Artifact.Digest, good.Spec.Artifact.Digest)
			}
			if len(a.Spec.HealthCheckExprs) != 0 {
				t.Errorf("the Assignment has the refused expressions: %+v", a.Spec.HealthCheckExprs)
			}
			spokeTarget(fleet, "spoke-1", appNS).wantValue(t, "a", "good")
			// Back to the good spec for the next case.
			cur = currentKustomization(t, hub, ks)
			patch = client.MergeFrom(cur.DeepCopy())
			cur.Spec.Components, cur.Spec.CommonMetadata, cur.Spec.HealthCheckExprs = nil, nil, nil
			if err := hub.Patch(ctx, cur, patch); err != nil {
				t.Fatal(err)
			}
			env.WaitForCondition(t, hub, cur, meta.ReadyCondition, metav1.ConditionTrue)
		})
	}
}

// TestHealthCheckExprs: CEL expressions give the health of a custom resource on
// each spoke, and the hub sees it move: in progress, current, failed.
func TestHealthCheckExprs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "kcel")
	hub := fleet.HubClient()
	spokes := []string{"spoke-1", "spoke-2"}
	spokeNamespace(t, fleet, appNS, spokes...)
	group := appNS + ".example.com"
	crd := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]interface{}{"name": "databases." + group},
			"spec": map[string]interface{}{
				"group": group, "scope": "Namespaced",
				"names": map[string]interface{}{"plural": "databases", "singular": "database", "kind": "Database", "listKind": "DatabaseList"},
				"versions": []interface{}{map[string]interface{}{"name": "v1", "served": true, "storage": true,
					"subresources": map[string]interface{}{"status": map[string]interface{}{}},
					"schema":       map[string]interface{}{"openAPIV3Schema": map[string]interface{}{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
			},
		}}
	}
	for _, s := range spokes {
		c := fleet.SpokeClient(s)
		def := crd()
		if err := c.Create(ctx, def); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), crd()) })
		env.WaitFor(t, c, def, func(u *unstructured.Unstructured) error {
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cond := range conds {
				if m, _ := cond.(map[string]interface{}); m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
			return fmt.Errorf("not established yet")
		})
	}
	gitSource(t, hub, ns, "app", map[string]string{
		"db/kustomization.yaml": kustomization("db.yaml"),
		"db/db.yaml":            fmt.Sprintf("apiVersion: %s/v1\nkind: Database\nmetadata:\n  name: db\n  namespace: %s\nspec:\n  size: small\n", group, appNS),
	})
	ks := deploy(t, hub, ns, "app", "app", "./db", func(s *deliveryv1.KustomizationSpec) {
		s.Placement = byName(spokes...)
		s.Wait = true
		s.Timeout = &metav1.Duration{Duration: 5 * time.Minute}
		// The agent looks again at least this often, so a current object that
		// fails is seen.
		s.Interval = metav1.Duration{Duration: 10 * time.Second}
		s.HealthCheckExprs = []meta.CustomHealthCheck{{
			APIVersion: group + "/v1", Kind: "Database",
			InProgress: "status.?phase.orValue('') == 'Provisioning'",
			Failed:     "status.?phase.orValue('') == 'Broken'",
			Current:    "status.?phase.orValue('') == 'Online' && status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True')",
		}}
	})
	logOnFailure(t, hub, ks)
	setPhase := func(phase string, ready string) {
		t.Helper()
		for _, s := range spokes {
			c := fleet.SpokeClient(s)
			u := &unstructured.Unstructured{}
			u.SetAPIVersion(group + "/v1")
			u.SetKind("Database")
			env.Eventually(t, "the Database's status on "+s, func() error {
				if err := c.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "db"}, u); err != nil {
					return err
				}
				u.Object["status"] = map[string]interface{}{"phase": phase,
					"conditions": []interface{}{map[string]interface{}{"type": "Ready", "status": ready}}}
				return c.Status().Update(ctx, u)
			})
		}
	}
	onBoth := func(check func(*fleetv1.Assignment) error) {
		t.Helper()
		for _, s := range spokes {
			waitAssignmentFor(t, hub, s, ns, "app", check)
		}
	}
	// The expressions travel in the signed Assignment.
	onBoth(func(a *fleetv1.Assignment) error {
		if len(a.Spec.HealthCheckExprs) != 1 || a.Spec.HealthCheckExprs[0].Kind != "Database" {
			return fmt.Errorf("healthCheckExprs %+v", a.Spec.HealthCheckExprs)
		}
		return nil
	})
	// No status yet: no expression is true, the agent waits.
	onBoth(wantCondition(meta.ReadyCondition, metav1.ConditionUnknown, meta.ProgressingReason, "no health expression is true"))
	setPhase("Provisioning", "True")
	onBoth(wantCondition(meta.ReadyCondition, metav1.ConditionUnknown, meta.ProgressingReason, "inProgress expression is true"))
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2}, "")

	setPhase("Online", "True")
	onBoth(wantCondition(meta.ReadyCondition, metav1.ConditionTrue, meta.SucceededReason))
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, "")

	began := time.Now()
	setPhase("Broken", "False")
	onBoth(wantCondition(meta.ReadyCondition, metav1.ConditionFalse, meta.HealthCheckFailedReason, "failed expression is true"))
	t.Logf("failure seen on both clusters %s after the status changed", time.Since(began).Round(10*time.Millisecond))
	env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
		if k.Status.Clusters.Failed != 2 || len(k.Status.Failures) != 2 {
			return fmt.Errorf("clusters %+v, failures %+v", k.Status.Clusters, k.Status.Failures)
		}
		for _, f := range k.Status.Failures {
			if !strings.Contains(f.Message, "failed expression is true") {
				return fmt.Errorf("failure message %q", f.Message)
			}
		}
		return nil
	})
}

// logOnFailure logs the Kustomization's conditions when t fails, to say why.
func logOnFailure(t *testing.T, hub client.Client, ks *deliveryv1.Kustomization) {
	t.Cleanup(func() {
		if t.Failed() {
			k := &deliveryv1.Kustomization{}
			if err := hub.Get(context.Background(), client.ObjectKeyFromObject(ks), k); err == nil {
				t.Logf("Kustomization %s/%s: conditions %+v, clusters %+v, failures %+v", k.Namespace, k.Name, k.Status.Conditions, k.Status.Clusters, k.Status.Failures)
			}
		}
	})
}
