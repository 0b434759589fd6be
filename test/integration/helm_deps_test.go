package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/charts"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/registry"
)

// TestHelmReleaseDependsOnNotPlaced: a HelmRelease's dependency not placed on a
// cluster is a condition naming it and the cluster (DependencyNotPlaced, Stalled),
// as for Kustomizations; where it is placed the release goes ahead, and placing the
// dependency there too lets the dependent through.
func TestHelmReleaseDependsOnNotPlaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, ns, appNS := sharedFleet(t, "helmdeps")
	hub := f.HubClient()
	reg := registry.New(t)
	reg.PushChart("charts", "hello", "0.1.0", charts.Simple("hello", "0.1.0").Package(t))
	if err := hub.Create(ctx, helmRepository(ns, "oci", reg.URL("charts"), "oci")); err != nil {
		t.Fatal(err)
	}
	create := func(name string, spokes []string, deps ...string) *deliveryv1.HelmRelease {
		hr := &deliveryv1.HelmRelease{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: deliveryv1.HelmReleaseSpec{
				Chart: deliveryv1.HelmChartTemplate{Chart: "hello", Version: "0.1.0",
					SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "oci"}},
				ReleaseName: name, TargetNamespace: appNS, Interval: metav1.Duration{Duration: time.Hour},
				Install:   &meta.HelmInstall{CreateNamespace: true},
				Placement: byName(spokes...),
			},
		}
		for _, d := range deps {
			hr.Spec.DependsOn = append(hr.Spec.DependsOn, deliveryv1.DependencyReference{Name: d})
		}
		if err := hub.Create(ctx, hr); err != nil {
			t.Fatal(err)
		}
		return hr
	}
	base := create("base", []string{"spoke-1"})
	create("app", []string{"spoke-1", "spoke-2"}, "base")

	baseAssignment := fleetv1.AssignmentName(deliveryv1.HelmReleaseKind, ns, "base")
	a := helmReleaseAssignment("spoke-2", ns, "app")
	env.WaitFor(t, hub, a, wantCondition(meta.ReadyCondition, metav1.ConditionFalse, meta.DependencyNotPlacedReason, baseAssignment, "spoke-2"))
	if len(a.Spec.UnplacedDependencies) != 1 || len(a.Spec.DependsOn) != 0 {
		t.Errorf("spoke-2's Assignment: dependsOn %v, unplacedDependencies %v", a.Spec.DependsOn, a.Spec.UnplacedDependencies)
	}
	if c := assignmentCondition(a, meta.StalledCondition); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled is %+v, want True", c)
	}
	wantLast(t, helmOn(t, f, "spoke-1", appNS), "spoke-1", "app", "0.1.0")
	if rels, err := history(helmOn(t, f, "spoke-2", appNS), "app"); err == nil && len(rels) > 0 {
		t.Errorf("app was released on spoke-2 without its dependency: %s", describe(rels))
	}

	// Placing the dependency there too lets the dependent through.
	if err := hub.Get(ctx, client.ObjectKeyFromObject(base), base); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(base.DeepCopy())
	base.Spec.Placement = byName("spoke-1", "spoke-2")
	if err := hub.Patch(ctx, base, patch); err != nil {
		t.Fatal(err)
	}
	wantLast(t, helmOn(t, f, "spoke-2", appNS), "spoke-2", "app", "0.1.0")
}
