package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// TestSharedNamespace: two deployments declare the same Namespace; deleting one
// prunes its own objects but not the Namespace the other still declares. Deleting the
// second prunes the Namespace too.
func TestSharedNamespace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "sharedns")
	hub := fleet.HubClient()
	spoke := spokeTarget(fleet, "spoke-1", appNS)

	repo := gitserver.New(t).CreateRepo("sharedns")
	rev := repo.Write(map[string]string{
		"one/kustomization.yaml": kustomization("ns.yaml", "cm.yaml"),
		"one/ns.yaml":            namespace(appNS),
		"one/cm.yaml":            configMap(appNS, "one", "1"),
		"two/kustomization.yaml": kustomization("ns.yaml", "cm.yaml"),
		"two/ns.yaml":            namespace(appNS),
		"two/cm.yaml":            configMap(appNS, "two", "2"),
	})
	if err := hub.Create(ctx, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sharedns"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	deploy := func(name string) *deliveryv1.Kustomization {
		ks := &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: deliveryv1.KustomizationSpec{
				SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "sharedns"},
				Path:      name, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
				Placement: byName("spoke-1"),
			}}
		if err := hub.Create(ctx, ks); err != nil {
			t.Fatal(err)
		}
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, rev)
		return ks
	}
	one, two := deploy("one"), deploy("two")
	spoke.wantValue(t, "one", "1")
	spoke.wantValue(t, "two", "2")
	nsAlive := func() error {
		var n corev1.Namespace
		if err := spoke.c.Get(ctx, types.NamespacedName{Name: appNS}, &n); err != nil {
			return err
		}
		if !n.DeletionTimestamp.IsZero() {
			return fmt.Errorf("namespace %s is being deleted", appNS)
		}
		return nil
	}

	// Whichever applied last holds the owner annotation; delete that one first.
	if err := hub.Delete(ctx, two); err != nil {
		t.Fatal(err)
	}
	env.WaitGone(t, hub, assignmentOf("spoke-1", ns, "two"))
	spoke.wantGone(t, "two")
	if err := nsAlive(); err != nil {
		t.Fatalf("the Namespace deployment one still declares was pruned: %v", err)
	}
	spoke.wantValue(t, "one", "1")

	if err := hub.Delete(ctx, one); err != nil {
		t.Fatal(err)
	}
	env.WaitGone(t, hub, assignmentOf("spoke-1", ns, "one"))
	env.Eventually(t, "the Namespace pruned with its last deployment", func() error {
		if err := nsAlive(); err == nil {
			return fmt.Errorf("namespace %s still there", appNS)
		}
		return nil
	})
}
