package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// appNS is where the tests with a fleet of their own deploy on the spokes.
const appNS = "e2e-app"

func configMap(ns, name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n  value: %q\n", name, ns, value)
}

func namespace(name string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n"
}

func kustomization(resources ...string) string {
	return "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + strings.Join(resources, "\n- ") + "\n"
}

// fetchNow asks the hub to fetch the repository at once, as `flotilla reconcile` does.
func fetchNow(t *testing.T, c client.Client, repo *sourcev1.GitRepository, wantCommit string) {
	t.Helper()
	requestReconcile(t, c, repo)
	env.WaitFor(t, c, repo, func(r *sourcev1.GitRepository) error {
		if r.Status.Artifact == nil || !strings.HasSuffix(r.Status.Artifact.Revision, "sha1:"+wantCommit) {
			return fmt.Errorf("artifact is %+v, want commit %s", r.Status.Artifact, wantCommit)
		}
		return nil
	})
}

func wantCounts(t *testing.T, c client.Client, ks *deliveryv1.Kustomization, want meta.ClusterCounts, revision string) {
	t.Helper()
	env.WaitFor(t, c, ks, func(k *deliveryv1.Kustomization) error {
		if diff := cmp.Diff(want, k.Status.Clusters); diff != "" {
			return fmt.Errorf("status.clusters (-want +got):\n%s", diff)
		}
		if revision != "" && !strings.HasSuffix(k.Status.LastAppliedRevision, revision) {
			return fmt.Errorf("lastAppliedRevision %q, want commit %s", k.Status.LastAppliedRevision, revision)
		}
		return nil
	})
}

// TestDeliveryAcrossFleet walks one Kustomization through the life the foundation
// issue asks for: placement by label, new commits, prune, relabelling, a broken
// manifest, and an artifact whose signature does not verify.
func TestDeliveryAcrossFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "delivery")
	hub := fleet.HubClient()
	// Placed by a label of this test's own: spoke-1 delivery=dev, spoke-2 delivery=prod.
	relabel(t, hub, "spoke-1", "dev")
	relabel(t, hub, "spoke-2", "prod")
	s1, s2 := spokeTarget(fleet, "spoke-1", appNS), spokeTarget(fleet, "spoke-2", appNS)

	git := gitserver.New(t)
	repo := git.CreateRepo("app")
	rev1 := repo.Write(map[string]string{
		"deploy/kustomization.yaml": kustomization("ns.yaml", "a.yaml", "b.yaml"),
		"deploy/ns.yaml":            namespace(appNS),
		"deploy/a.yaml":             configMap(appNS, "a", "one"),
		"deploy/b.yaml":             configMap(appNS, "b", "one"),
	})

	src := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: sourcev1.GitRepositorySpec{
			URL:      repo.URL(),
			Ref:      &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour}, // fetches are asked for explicitly
		},
	}
	if err := hub.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	ks := &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path:      "./deploy",
			Prune:     true,
			Interval:  metav1.Duration{Duration: time.Hour},
			Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{deliveryLabel: "dev"}}},
		},
	}
	if err := hub.Create(ctx, ks); err != nil {
		t.Fatal(err)
	}

	t.Run("lands on the selected spoke only", func(t *testing.T) {
		s1.wantValue(t, "a", "one")
		s1.wantValue(t, "b", "one")
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, rev1)
		env.WaitReady(t, hub, ks)
		if _, err := s2.value("a"); !apierrors.IsNotFound(err) {
			t.Fatalf("spoke-2 is not selected but has ConfigMap a (err=%v)", err)
		}
		var cm corev1.ConfigMap
		if err := s1.c.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "a"}, &cm); err != nil {
			t.Fatal(err)
		}
		if manager := agent.FieldManager(assignmentOf("spoke-1", ns, "app")); !hasManager(cm.ManagedFields, manager) {
			t.Fatalf("ConfigMap a is not applied server-side by its deployment's manager %s: %+v", manager, cm.ManagedFields)
		}
		a := assignmentOf("spoke-1", ns, "app")
		if err := hub.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			t.Fatal(err)
		}
		if a.Status.AppliedDigest != a.Spec.Artifact.Digest || a.Status.Inventory != 3 {
			t.Fatalf("assignment status: digest %s (want %s), inventory %d (want 3)", a.Status.AppliedDigest, a.Spec.Artifact.Digest, a.Status.Inventory)
		}
		env.WaitFor(t, hub, &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "spoke-1"}}, func(c *fleetv1.Cluster) error {
			if diff := cmp.Diff(meta.AssignmentCounts{Total: 1, Ready: 1}, c.Status.Assignments); diff != "" {
				return fmt.Errorf("cluster assignments (-want +got): %s", diff)
			}
			return nil
		})
	})

	t.Run("a new commit updates the objects", func(t *testing.T) {
		rev2 := repo.Write(map[string]string{"deploy/a.yaml": configMap(appNS, "a", "two")})
		fetchNow(t, hub, src, rev2)
		s1.wantValue(t, "a", "two")
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, rev2)
	})

	t.Run("a file removed from Git is pruned", func(t *testing.T) {
		repo.Write(map[string]string{"deploy/kustomization.yaml": kustomization("ns.yaml", "a.yaml")})
		rev3 := repo.Remove("deploy/b.yaml")
		fetchNow(t, hub, src, rev3)
		s1.wantGone(t, "b")
		s1.wantValue(t, "a", "two")
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, rev3)
	})

	t.Run("relabelling moves the deployment", func(t *testing.T) {
		relabel(t, hub, "spoke-1", "staging")
		relabel(t, hub, "spoke-2", "dev")
		s2.wantValue(t, "a", "two")
		s1.wantGone(t, "a")
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, "")
		env.Eventually(t, "spoke-1's Assignment released and removed", func() error {
			var list fleetv1.AssignmentList
			if err := hub.List(ctx, &list, client.InNamespace(fleetv1.ClusterNamespace("spoke-1")),
				client.MatchingLabels{fleetv1.OwnerNamespaceLabel: ns}); err != nil {
				return err
			}
			if len(list.Items) != 0 {
				return fmt.Errorf("%d Assignments left", len(list.Items))
			}
			return nil
		})
	})

	t.Run("a broken manifest keeps the previous revision", func(t *testing.T) {
		before := currentKustomization(t, hub, ks)
		broken := repo.Write(map[string]string{"deploy/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: [oops\n"})
		fetchNow(t, hub, src, broken)
		env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
			c := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != meta.BuildFailedReason {
				return fmt.Errorf("Ready is %+v, want False/BuildFailed", c)
			}
			if !strings.Contains(c.Message, "a.yaml") || !strings.Contains(c.Message, broken[:7]) {
				return fmt.Errorf("message %q does not name the file and the revision", c.Message)
			}
			return nil
		})
		after := currentKustomization(t, hub, ks)
		if after.Status.Artifact.Digest != before.Status.Artifact.Digest || after.Status.LastAppliedRevision != before.Status.LastAppliedRevision {
			t.Fatalf("a failed build changed the artifact: before %s@%s, after %s@%s",
				before.Status.LastAppliedRevision, before.Status.Artifact.Digest, after.Status.LastAppliedRevision, after.Status.Artifact.Digest)
		}
		if !strings.HasSuffix(after.Status.LastAttemptedRevision, broken) {
			t.Fatalf("lastAttemptedRevision %q, want the broken commit %s", after.Status.LastAttemptedRevision, broken)
		}
		// The hub handled the broken commit without handing spoke-2 anything new; once
		// spoke-2's agent has acted on its Assignment as it stands, the previous
		// revision must still run there.
		a2 := assignmentOf("spoke-2", ns, "app")
		if err := hub.Get(ctx, client.ObjectKeyFromObject(a2), a2); err != nil {
			t.Fatal(err)
		}
		if a2.Spec.Artifact.Digest != before.Status.Artifact.Digest {
			t.Fatalf("spoke-2 was handed %s after a failed build, want %s", a2.Spec.Artifact.Digest, before.Status.Artifact.Digest)
		}
		env.WaitFor(t, hub, a2, func(a *fleetv1.Assignment) error {
			if a.Status.ObservedGeneration != a.Generation || a.Status.AppliedDigest != a.Spec.Artifact.Digest {
				return fmt.Errorf("the agent has not acted on generation %d yet: observed %d, applied %s", a.Generation, a.Status.ObservedGeneration, a.Status.AppliedDigest)
			}
			return nil
		})
		if v, err := s2.value("a"); err != nil || v != "two" {
			t.Fatalf("spoke-2 runs value %q (err %v), want the previous revision's two", v, err)
		}
		if after.Status.Clusters != (meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}) {
			t.Fatalf("counts changed by a failed build: %+v", after.Status.Clusters)
		}

		fixed := repo.Write(map[string]string{"deploy/a.yaml": configMap(appNS, "a", "three")})
		fetchNow(t, hub, src, fixed)
		s2.wantValue(t, "a", "three")
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, fixed)
		env.WaitReady(t, hub, ks)
	})

	t.Run("an artifact whose signature does not verify applies nothing", func(t *testing.T) {
		cur := currentKustomization(t, hub, ks)
		rogue, err := artifact.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		// A real artifact of the hub, signed by a key the agents do not trust, aimed at
		// a namespace the deployment does not use, so anything applied would show.
		forged := appNS + "-forged"
		a := &fleetv1.Assignment{
			ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("spoke-2"), Name: "forged",
				Labels: map[string]string{fleetv1.ClusterLabel: "spoke-2"}},
			Spec: fleetv1.AssignmentSpec{
				Owner: fleetv1.DeploymentReference{APIVersion: deliveryv1.GroupVersion.String(), Kind: deliveryv1.KustomizationKind,
					Namespace: ns, Name: "app", UID: string(cur.UID)},
				Artifact: fleetv1.SignedArtifact{URL: cur.Status.Artifact.URL, Digest: cur.Status.Artifact.Digest,
					Revision: cur.Status.Artifact.Revision},
				TargetNamespace: forged,
			},
		}
		if a.Spec.Artifact.Signature, err = artifact.SignStatement(rogue, "spoke-2", a); err != nil {
			t.Fatal(err)
		}
		if err := hub.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		env.WaitFor(t, hub, a, func(a *fleetv1.Assignment) error {
			c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != meta.VerificationFailedReason {
				return fmt.Errorf("Ready is %+v, want False/VerificationFailed", c)
			}
			if !strings.Contains(c.Message, "signature") {
				return fmt.Errorf("message %q does not say the signature failed", c.Message)
			}
			if a.Status.AppliedDigest != "" || a.Status.Inventory != 0 {
				return fmt.Errorf("something was applied: %+v", a.Status)
			}
			return nil
		})
		var cms corev1.ConfigMapList
		if err := s2.c.List(ctx, &cms, client.InNamespace(forged)); err != nil {
			t.Fatal(err)
		}
		if len(cms.Items) != 0 {
			t.Fatalf("a forged artifact applied %d objects", len(cms.Items))
		}
		// The real deployment is untouched, and its rollup still right.
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, "")
		if err := hub.Delete(ctx, a); err != nil {
			t.Fatal(err)
		}
	})
}

func hasManager(fields []metav1.ManagedFieldsEntry, manager string) bool {
	for _, f := range fields {
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// deliveryLabel is TestDeliveryAcrossFleet's own cluster label, which it moves.
const deliveryLabel = "delivery"

func relabel(t *testing.T, c client.Client, cluster, value string) {
	t.Helper()
	var cl fleetv1.Cluster
	if err := c.Get(context.Background(), types.NamespacedName{Name: cluster}, &cl); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cl.DeepCopy())
	cl.Labels[deliveryLabel] = value
	if err := c.Patch(context.Background(), &cl, patch); err != nil {
		t.Fatal(err)
	}
}

func currentKustomization(t *testing.T, c client.Client, ks *deliveryv1.Kustomization) *deliveryv1.Kustomization {
	t.Helper()
	var out deliveryv1.Kustomization
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(ks), &out); err != nil {
		t.Fatal(err)
	}
	if out.Status.Artifact == nil {
		t.Fatal("the Kustomization has no artifact")
	}
	return &out
}
