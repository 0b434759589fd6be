package engine

import (
	"context"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/flotilla-dev/flotilla/api"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// TestDeployGrantsEachClustersURL: the signer's download grant for each cluster ends
// up in that cluster's spec.artifact.url and under its signature; the same keys give
// the same URL, so a second reconcile writes nothing, and a new key rewrites the URLs.
func TestDeployGrantsEachClustersURL(t *testing.T) {
	ctx := context.Background()
	ks := testOwner()
	ks.Spec.Placement = deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}}
	var writes atomic.Int32
	count := func() { writes.Add(1) }
	c := fake.NewClientBuilder().WithScheme(api.NewScheme()).
		WithStatusSubresource(&fleetv1.Assignment{}, &fleetv1.Cluster{}).
		WithObjects(ks, testCluster("eu", nil, nil), testCluster("us", nil, nil)).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
				count()
				return c.Create(ctx, o, opts...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
				count()
				return c.Patch(ctx, o, p, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
				count()
				return c.Update(ctx, o, opts...)
			},
		}).Build()
	key := "k1"
	// A signer as the hub's: grant first, then sign what the Assignment then says.
	sign := func(cluster string, a *fleetv1.Assignment) (string, error) {
		a.Spec.Artifact.URL = storage.GrantedURL(a.Spec.Artifact.URL, key+"-"+cluster)
		return "signed:" + cluster + ":" + a.Spec.Artifact.URL, nil
	}
	e := &Engine{Client: c, Recorder: events.NewFakeRecorder(16), Sign: sign}

	check := func(wantKey string) {
		t.Helper()
		for _, cluster := range []string{"eu", "us"} {
			a, err := getAssignment(t, c, cluster)
			if err != nil {
				t.Fatalf("cluster %s: %v", cluster, err)
			}
			wantURL := "https://hub/a.tar.gz?grant=" + wantKey + "-" + cluster
			if a.Spec.Artifact.URL != wantURL {
				t.Errorf("cluster %s: url %q, want %q", cluster, a.Spec.Artifact.URL, wantURL)
			}
			if want := "signed:" + cluster + ":" + wantURL; a.Spec.Artifact.Signature != want {
				t.Errorf("cluster %s: signature %q does not cover the granted URL (want %q)", cluster, a.Spec.Artifact.Signature, want)
			}
		}
	}
	if _, err := e.Deploy(ctx, testDeployment(ks)); err != nil {
		t.Fatal(err)
	}
	check("k1")
	if n := writes.Load(); n != 2 {
		t.Fatalf("first deploy: %d writes, want 2", n)
	}

	writes.Store(0)
	if _, err := e.Deploy(ctx, testDeployment(ks)); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load(); n != 0 {
		t.Errorf("a second deploy with the same keys made %d writes, want none", n)
	}

	key = "k2" // the active key rotated
	if _, err := e.Deploy(ctx, testDeployment(ks)); err != nil {
		t.Fatal(err)
	}
	check("k2")

	// Suspending seals again: the URL keeps one grant, of the current key.
	key = "k3"
	if err := e.Suspend(ctx, deliveryv1.KustomizationKind, ks); err != nil {
		t.Fatal(err)
	}
	check("k3")
}
