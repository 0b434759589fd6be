package fleet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	hubfleet "github.com/flotilla-dev/flotilla/hub/fleet"
	"github.com/flotilla-dev/flotilla/test/env"
)

// TestAssignmentOwnerGone: an Assignment goes once its owner is gone, whatever the
// owner's kind: deleted, recreated under another UID, or of a kind (or group) the
// API server does not serve. An Assignment whose owner lives stays.
func TestAssignmentOwnerGone(t *testing.T) {
	ctx := context.Background()
	cp := env.StartControlPlane(t, "assignment-owner", true)
	c := cp.Client()
	env.StartManager(t, cp.Config(), func(mgr ctrl.Manager) error {
		return (&hubfleet.AssignmentReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
	})

	ns := fleetv1.ClusterNamespace("x")
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	newKs := func(name string) *deliveryv1.Kustomization {
		ks := &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: deliveryv1.KustomizationSpec{SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
				Interval: metav1.Duration{Duration: time.Minute}}}
		if err := c.Create(ctx, ks); err != nil {
			t.Fatal(err)
		}
		return ks
	}
	live, other := newKs("live"), newKs("other")
	delivery := deliveryv1.GroupVersion.String()

	assignments := map[string]fleetv1.DeploymentReference{
		"live":         {APIVersion: delivery, Kind: deliveryv1.KustomizationKind, Namespace: "default", Name: "live", UID: string(live.UID)},
		"deleted":      {APIVersion: delivery, Kind: deliveryv1.KustomizationKind, Namespace: "default", Name: "deleted", UID: "gone"},
		"recreated":    {APIVersion: delivery, Kind: deliveryv1.KustomizationKind, Namespace: "default", Name: "other", UID: string(other.UID) + "-old"},
		"unknown-kind": {APIVersion: delivery, Kind: "HelmRelease", Namespace: "default", Name: "live"},
		"unknown-group": {APIVersion: "delivery.example.com/v1", Kind: deliveryv1.KustomizationKind, Namespace: "default", Name: "live",
			UID: string(live.UID)},
	}
	for name, owner := range assignments {
		a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: fleetv1.OwnerLabels(owner.Kind, owner.Namespace, owner.Name),
			// The hub always sets it; cluster x does not exist, so nothing holds it.
			Finalizers: []string{fleetv1.AssignmentFinalizer}},
			Spec: fleetv1.AssignmentSpec{Owner: owner, Artifact: fleetv1.SignedArtifact{
				URL: "https://hub/a.tar.gz", Digest: "sha256:" + fmt.Sprintf("%064d", 1), Signature: "c2ln"}}}
		a.Labels[fleetv1.ClusterLabel] = "x"
		if err := c.Create(ctx, a); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name := range assignments {
		if name == "live" {
			continue
		}
		env.WaitGone(t, c, &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	}
	env.Consistently(t, 2*time.Second, "the live owner's Assignment stays", func() error {
		var a fleetv1.Assignment
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "live"}, &a); err != nil {
			return err
		}
		if a.DeletionTimestamp != nil {
			return fmt.Errorf("being deleted")
		}
		return nil
	})

	// Deleting the owner releases its Assignment.
	if err := c.Delete(ctx, live); err != nil {
		t.Fatal(err)
	}
	env.WaitGone(t, c, &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "live"}})
	var a fleetv1.Assignment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "live"}, &a); !apierrors.IsNotFound(err) {
		t.Errorf("live: %v, want not found", err)
	}
}
