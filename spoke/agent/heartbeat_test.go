package agent

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

type fixedVersion struct{}

func (fixedVersion) ServerVersion() (*version.Info, error) {
	return &version.Info{GitVersion: "v1.36.3"}, nil
}

// TestHeartbeatRequests: a renewal is one request to the hub once the Lease is known
// (at 1,000 clusters every request per beat is 100 per second on the hub), and a Lease
// changed or deleted behind the agent's back is read again, not lost.
func TestHeartbeatRequests(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var gets, writes int
	c := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			writes++
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes++
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	h := &heartbeat{writer: c, reader: c, namespace: "cluster-a", cluster: "a", interval: 10 * time.Second,
		versions: fixedVersion{}, log: log.Log}
	key := types.NamespacedName{Namespace: "cluster-a", Name: fleetv1.AgentLeaseName}
	beat := func() {
		t.Helper()
		if err := h.beat(ctx); err != nil {
			t.Fatal(err)
		}
	}

	beat() // creates it
	for range 5 {
		beat()
	}
	if gets != 1 || writes != 6 {
		t.Errorf("6 beats made %d reads and %d writes, want 1 read (the first) and 6 writes", gets, writes)
	}

	// Someone else updated it: the next beat conflicts, reads, and renews.
	other := &coordinationv1.Lease{}
	if err := c.Get(ctx, key, other); err != nil {
		t.Fatal(err)
	}
	other.Annotations["touched"] = "yes"
	if err := c.Update(ctx, other); err != nil {
		t.Fatal(err)
	}
	gets, writes = 0, 0
	beat()
	if gets != 1 || writes != 2 {
		t.Errorf("a beat after a conflict made %d reads and %d writes, want 1 and 2 (the refused one, then the renewal)", gets, writes)
	}

	// Deleted: recreated.
	if err := c.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
	beat()
	got := &coordinationv1.Lease{}
	if err := c.Get(ctx, key, got); err != nil {
		t.Fatalf("the Lease was not recreated: %v", err)
	}
	if got.Spec.HolderIdentity == nil || *got.Spec.HolderIdentity != "a" || got.Spec.RenewTime == nil {
		t.Errorf("recreated Lease %+v", got.Spec)
	}
}
