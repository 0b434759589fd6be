package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// healWithin is how soon a hand edit on a spoke must be healed (issue 13).
const healWithin = 10 * time.Second

// gitSource creates a GitRepository of files in hub namespace ns, fetched once.
func gitSource(t *testing.T, hub client.Client, ns, name string, files map[string]string) {
	t.Helper()
	repo := gitserver.New(t).CreateRepo(name)
	repo.Write(files)
	src := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: sourcev1.GitRepositorySpec{
			URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour},
		},
	}
	if err := hub.Create(context.Background(), src); err != nil {
		t.Fatal(err)
	}
}

// deploy creates a Kustomization of path in source src, edited by edit.
func deploy(t *testing.T, hub client.Client, ns, name, src, path string, edit func(*deliveryv1.KustomizationSpec)) *deliveryv1.Kustomization {
	t.Helper()
	ks := &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: src},
			Path:      path, Prune: true,
			Interval: metav1.Duration{Duration: time.Hour}, // the watch, not the interval, heals
		},
	}
	if edit != nil {
		edit(&ks.Spec)
	}
	if err := hub.Create(context.Background(), ks); err != nil {
		t.Fatal(err)
	}
	return ks
}

// handEdit sets ConfigMap name's value on a spoke, as kubectl edit would.
func (tg target) handEdit(t *testing.T, name, value string) {
	t.Helper()
	var cm corev1.ConfigMap
	if err := tg.c.Get(context.Background(), types.NamespacedName{Namespace: tg.ns, Name: name}, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = value
	if err := tg.c.Update(context.Background(), &cm, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
}

// healedWithin waits at most d for ConfigMap name to hold value again.
func (tg target) healedWithin(t *testing.T, d time.Duration, name, value string) {
	t.Helper()
	began := time.Now()
	env.EventuallyWithin(t, d, fmt.Sprintf("ConfigMap %s/%s healed to %q on %s", tg.ns, name, value, tg.name), func() error {
		got, err := tg.value(name)
		if err != nil {
			return err
		}
		if got != value {
			return fmt.Errorf("value is %q", got)
		}
		return nil
	})
	t.Logf("%s/%s healed in %s", tg.ns, name, time.Since(began).Round(10*time.Millisecond))
}

// waitAssignmentFor waits until the Assignment of Kustomization ns/name on cluster
// passes check.
func waitAssignmentFor(t *testing.T, hub client.Client, cluster, ns, name string, check func(*fleetv1.Assignment) error) *fleetv1.Assignment {
	t.Helper()
	a := assignmentOf(cluster, ns, name)
	env.WaitFor(t, hub, a, check)
	return a
}

func assignmentCondition(a *fleetv1.Assignment, typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(a.Status.Conditions, typ)
}

func wantCondition(typ string, status metav1.ConditionStatus, reason string, contains ...string) func(*fleetv1.Assignment) error {
	return func(a *fleetv1.Assignment) error {
		c := assignmentCondition(a, typ)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("%s is %+v, want %s/%s", typ, c, status, reason)
		}
		for _, s := range contains {
			if !strings.Contains(c.Message, s) {
				return fmt.Errorf("%s message %q does not say %q", typ, c.Message, s)
			}
		}
		return nil
	}
}

// TestDriftHealedInSeconds: a hand edit or a deletion on a spoke is corrected within
// seconds though the deployment's interval is an hour (the agent watches what it
// applied), and in Warn mode it is reported, not corrected.
func TestDriftHealedInSeconds(t *testing.T) {
	t.Parallel()
	fleet, ns, appNS := sharedFleet(t, "drift")
	hub := fleet.HubClient()
	s1 := spokeTarget(fleet, "spoke-1", appNS)
	gitSource(t, hub, ns, "app", map[string]string{
		"correct/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"correct/ns.yaml":            namespace(appNS),
		"correct/a.yaml":             configMap(appNS, "a", "declared"),
		"warn/kustomization.yaml":    kustomization("w.yaml"),
		"warn/w.yaml":                configMap(appNS, "w", "declared"),
	})
	deploy(t, hub, ns, "correct", "app", "./correct", func(s *deliveryv1.KustomizationSpec) { s.Placement = byName("spoke-1") })
	s1.wantValue(t, "a", "declared")
	deploy(t, hub, ns, "warn", "app", "./warn", func(s *deliveryv1.KustomizationSpec) {
		s.Placement = byName("spoke-1")
		s.DependsOn = []deliveryv1.DependencyReference{{Name: "correct"}}
		s.DriftDetection = &meta.DriftDetection{Mode: meta.DriftWarn}
	})
	s1.wantValue(t, "w", "declared")

	t.Run("a hand edit is corrected within 10 s", func(t *testing.T) {
		s1.handEdit(t, "a", "by hand")
		s1.healedWithin(t, healWithin, "a", "declared")
		waitAssignmentFor(t, hub, "spoke-1", ns, "correct", wantCondition(meta.DriftedCondition, metav1.ConditionTrue, meta.DriftCorrectedReason, "ConfigMap/"+appNS+"/a"))
	})
	t.Run("a deleted object is re-created within 10 s", func(t *testing.T) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "a"}}
		if err := s1.c.Delete(context.Background(), cm); err != nil {
			t.Fatal(err)
		}
		s1.healedWithin(t, healWithin, "a", "declared")
	})
	t.Run("in Warn mode it is reported within 10 s and left as found", func(t *testing.T) {
		s1.handEdit(t, "w", "by hand")
		began := time.Now()
		a := assignmentOf("spoke-1", ns, "warn")
		env.EventuallyWithin(t, healWithin, "Drifted=True (DriftDetected) on the warn Assignment", func() error {
			if err := hub.Get(context.Background(), client.ObjectKeyFromObject(a), a); err != nil {
				return err
			}
			return wantCondition(meta.DriftedCondition, metav1.ConditionTrue, meta.DriftDetectedReason, "ConfigMap/"+appNS+"/w")(a)
		})
		t.Logf("drift reported in %s", time.Since(began).Round(10*time.Millisecond))
		// The report is the barrier: the agent has looked, and left it.
		if got, err := s1.value("w"); err != nil || got != "by hand" {
			t.Fatalf("Warn mode changed the hand edit: value %q (err %v)", got, err)
		}
	})
}

// TestSuspendHoldsOnSpokes: a suspended Kustomization's Assignments are marked
// suspended, and the agent corrects nothing until it is resumed.
func TestSuspendHoldsOnSpokes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "suspend")
	hub := fleet.HubClient()
	s1, s2 := spokeTarget(fleet, "spoke-1", appNS), spokeTarget(fleet, "spoke-2", appNS)
	gitSource(t, hub, ns, "app", map[string]string{
		"deploy/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"deploy/ns.yaml":            namespace(appNS),
		"deploy/a.yaml":             configMap(appNS, "a", "declared"),
	})
	ks := deploy(t, hub, ns, "app", "app", "./deploy", func(s *deliveryv1.KustomizationSpec) { s.Placement = byName("spoke-1", "spoke-2") })
	s1.wantValue(t, "a", "declared")
	s2.wantValue(t, "a", "declared")

	setSuspend := func(v bool) {
		t.Helper()
		cur := &deliveryv1.Kustomization{}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(ks), cur); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Spec.Suspend = v
		if err := hub.Patch(ctx, cur, patch); err != nil {
			t.Fatal(err)
		}
	}
	setSuspend(true)
	for _, tg := range []target{s1, s2} {
		waitAssignmentFor(t, hub, tg.name, ns, "app", func(a *fleetv1.Assignment) error {
			if !a.Spec.Suspend {
				return fmt.Errorf("spec.suspend is not set")
			}
			return nil
		})
		tg.handEdit(t, "a", "by hand")
		// The agent still looks (and reports), which is the barrier for "not corrected".
		waitAssignmentFor(t, hub, tg.name, ns, "app", wantCondition(meta.DriftedCondition, metav1.ConditionTrue, meta.DriftDetectedReason, "suspended"))
		if got, err := tg.value("a"); err != nil || got != "by hand" {
			t.Fatalf("%s corrected a suspended deployment: value %q (err %v)", tg.name, got, err)
		}
	}
	setSuspend(false)
	s1.healedWithin(t, healWithin, "a", "declared")
	s2.healedWithin(t, healWithin, "a", "declared")
	waitAssignmentFor(t, hub, "spoke-1", ns, "app", func(a *fleetv1.Assignment) error {
		if a.Spec.Suspend {
			return fmt.Errorf("spec.suspend is still set")
		}
		return nil
	})
}

// TestTimeoutBoundsApply: spec.timeout bounds the apply, not only the health wait.
// The artifact's CRD never becomes Established (its singular name is taken by a CRD
// made by hand), which the agent would otherwise wait 30 s for.
func TestTimeoutBoundsApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "timeout")
	hub := fleet.HubClient()
	group := appNS + ".example.com"
	// The fleet's scheme has no apiextensions types: the CRDs are unstructured.
	crd := func(plural, singular, kind string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]interface{}{"name": plural + "." + group},
			"spec": map[string]interface{}{
				"group": group, "scope": "Namespaced",
				"names": map[string]interface{}{"plural": plural, "singular": singular, "kind": kind, "listKind": kind + "List"},
				"versions": []interface{}{map[string]interface{}{"name": "v1", "served": true, "storage": true,
					"schema": map[string]interface{}{"openAPIV3Schema": map[string]interface{}{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
			},
		}}
	}
	taken := crd("alphas", "alpha", "Alpha")
	spoke := fleet.SpokeClient("spoke-1")
	if err := spoke.Create(ctx, taken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = spoke.Delete(context.Background(), crd("alphas", "alpha", "Alpha"))
		_ = spoke.Delete(context.Background(), crd("betas", "alpha", "Beta"))
	})
	env.WaitFor(t, spoke, taken, func(c *unstructured.Unstructured) error {
		conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
		for _, cond := range conds {
			if m, _ := cond.(map[string]interface{}); m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("not established yet")
	})
	conflicting := fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: betas.%[1]s
spec:
  group: %[1]s
  scope: Namespaced
  names: {plural: betas, singular: alpha, kind: Beta, listKind: BetaList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, group)
	gitSource(t, hub, ns, "app", map[string]string{
		"deploy/kustomization.yaml": kustomization("crd.yaml"),
		"deploy/crd.yaml":           conflicting,
	})
	began := time.Now()
	deploy(t, hub, ns, "app", "app", "./deploy", func(s *deliveryv1.KustomizationSpec) {
		s.Placement = byName("spoke-1")
		s.Timeout = &metav1.Duration{Duration: 3 * time.Second}
		s.RetryInterval = &metav1.Duration{Duration: time.Hour}
	})
	env.EventuallyWithin(t, 25*time.Second, "the apply to stop at spec.timeout", func() error {
		a := assignmentOf("spoke-1", ns, "app")
		if err := hub.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			return err
		}
		return wantCondition(meta.ReadyCondition, metav1.ConditionFalse, meta.ApplyFailedReason, "timed out after 3s")(a)
	})
	t.Logf("apply stopped %s after the Kustomization was created", time.Since(began).Round(10*time.Millisecond))
}

// TestRetryInterval: a failed apply is tried again after spec.retryInterval, not
// sooner.
func TestRetryInterval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "retry")
	hub := fleet.HubClient()
	s1 := spokeTarget(fleet, "spoke-1", appNS)
	// The namespace is not in the artifact: the apply fails until it exists.
	gitSource(t, hub, ns, "app", map[string]string{
		"deploy/kustomization.yaml": kustomization("a.yaml"),
		"deploy/a.yaml":             configMap(appNS, "a", "declared"),
	})
	const retry = 5 * time.Second
	deploy(t, hub, ns, "app", "app", "./deploy", func(s *deliveryv1.KustomizationSpec) {
		s.Placement = byName("spoke-1")
		s.RetryInterval = &metav1.Duration{Duration: retry}
	})
	a := waitAssignmentFor(t, hub, "spoke-1", ns, "app", wantCondition(meta.ReadyCondition, metav1.ConditionFalse, meta.ApplyFailedReason))
	if a.Spec.RetryInterval == nil || a.Spec.RetryInterval.Duration != retry {
		t.Fatalf("the Assignment's retryInterval is %v, want %s", a.Spec.RetryInterval, retry)
	}
	failed := time.Now()
	if err := s1.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s1.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}})
	})
	s1.wantValue(t, "a", "declared")
	took := time.Since(failed)
	t.Logf("applied %s after the failure was seen", took.Round(10*time.Millisecond))
	// The failure was seen at most a poll after it was written; the retry comes
	// retryInterval after it was written, and not with the short default backoff.
	if took < retry-2*time.Second || took > retry+5*time.Second {
		t.Fatalf("retried %s after the failure, want about %s", took, retry)
	}
}

// TestDependsOnNotPlaced: a dependency not placed on a cluster is a condition
// naming it and the cluster, not a silent wait; where it is placed, the dependent
// applies once it is Ready.
func TestDependsOnNotPlaced(t *testing.T) {
	t.Parallel()
	fleet, ns, appNS := sharedFleet(t, "deps")
	hub := fleet.HubClient()
	s1 := spokeTarget(fleet, "spoke-1", appNS)
	gitSource(t, hub, ns, "app", map[string]string{
		"base/kustomization.yaml": kustomization("ns.yaml", "b.yaml"),
		"base/ns.yaml":            namespace(appNS),
		"base/b.yaml":             configMap(appNS, "base", "one"),
		"app/kustomization.yaml":  kustomization("ns.yaml", "a.yaml"),
		"app/ns.yaml":             namespace(appNS),
		"app/a.yaml":              configMap(appNS, "app", "one"),
	})
	deploy(t, hub, ns, "base", "app", "./base", func(s *deliveryv1.KustomizationSpec) { s.Placement = byName("spoke-1") })
	deploy(t, hub, ns, "app", "app", "./app", func(s *deliveryv1.KustomizationSpec) {
		s.Placement = byName("spoke-1", "spoke-2")
		s.DependsOn = []deliveryv1.DependencyReference{{Name: "base"}}
	})
	baseAssignment := fleetv1.AssignmentName(deliveryv1.KustomizationKind, ns, "base")
	a := waitAssignmentFor(t, hub, "spoke-2", ns, "app", wantCondition(meta.ReadyCondition, metav1.ConditionFalse, meta.DependencyNotPlacedReason, baseAssignment, "spoke-2"))
	if len(a.Spec.UnplacedDependencies) != 1 || len(a.Spec.DependsOn) != 0 {
		t.Errorf("spoke-2's Assignment: dependsOn %v, unplacedDependencies %v", a.Spec.DependsOn, a.Spec.UnplacedDependencies)
	}
	if c := assignmentCondition(a, meta.StalledCondition); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled is %+v, want True", c)
	}
	s1.wantValue(t, "app", "one")

	// Placing the dependency there too lets the dependent through.
	base := &deliveryv1.Kustomization{}
	if err := hub.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "base"}, base); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(base.DeepCopy())
	base.Spec.Placement = byName("spoke-1", "spoke-2")
	if err := hub.Patch(context.Background(), base, patch); err != nil {
		t.Fatal(err)
	}
	spokeTarget(fleet, "spoke-2", appNS).wantValue(t, "app", "one")
}
