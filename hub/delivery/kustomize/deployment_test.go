package kustomize

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/tenancy"
)

// TestDeploymentHandsOverTheSpec: what a Kustomization asks of the spokes reaches
// the engine, dependencies named as their Assignments.
func TestDeploymentHandsOverTheSpec(t *testing.T) {
	ks := &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"}}
	ks.Spec = deliveryv1.KustomizationSpec{
		ServiceAccountName: "deployer", TargetNamespace: "web", Prune: true,
		ApplySettings: meta.ApplySettings{Wait: true, Decryption: &meta.Decryption{Provider: "sops"}},
		DependsOn:     []deliveryv1.DependencyReference{{Name: "db"}, {Name: "certs", Namespace: "infra"}},
		Placement:     deliveryv1.Placement{ClusterGroups: []string{"prod"}},
		Rollout:       &deliveryv1.Rollout{},
	}
	ks.Status.Artifact = &meta.Artifact{URL: "https://hub/x.tar.gz", Digest: "sha256:x", Revision: "main@sha1:1"}

	d := deployment(ks, tenancy.Decision{ServiceAccountName: "deployer"})
	want := fleetv1.AssignmentSpec{
		Artifact:           fleetv1.SignedArtifact{URL: "https://hub/x.tar.gz", Digest: "sha256:x", Revision: "main@sha1:1"},
		ServiceAccountName: "deployer", TargetNamespace: "web", Prune: true,
		ApplySettings: meta.ApplySettings{Wait: true, Decryption: &meta.Decryption{Provider: "sops"}},
		DependsOn:     []string{"ks.apps.db", "ks.infra.certs"},
	}
	if diff := cmp.Diff(want, d.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if d.Owner != ks || d.Kind != deliveryv1.KustomizationKind || d.Rollout != ks.Spec.Rollout || d.RolloutStatus != &ks.Status.Rollout {
		t.Errorf("deployment does not point at the Kustomization: %+v", d)
	}
	if diff := cmp.Diff(ks.Spec.Placement, d.Placement); diff != "" {
		t.Errorf("placement (-want +got):\n%s", diff)
	}
	// The engine must not share the Kustomization's apply settings.
	d.Spec.Decryption.Provider = "changed"
	if ks.Spec.Decryption.Provider != "sops" {
		t.Error("the deployment's spec aliases the Kustomization's")
	}
}

// TestIntervalFloor: a Kustomization cannot make the hub rebuild more often than
// MinInterval.
func TestIntervalFloor(t *testing.T) {
	for given, want := range map[time.Duration]time.Duration{0: MinInterval, time.Second: MinInterval, time.Hour: time.Hour} {
		ks := &deliveryv1.Kustomization{Spec: deliveryv1.KustomizationSpec{Interval: metav1.Duration{Duration: given}}}
		if got := interval(ks); got != want {
			t.Errorf("interval %s: requeue after %s, want %s", given, got, want)
		}
	}
}
