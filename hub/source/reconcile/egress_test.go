package reconcile

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// A fetch for a tenant's source runs under the egress restriction; a refused dial,
// even one a library's error message hides, makes the source Stalled with
// EgressNotAllowed, tried again at its interval, its artifact kept, one Warning Event.
// A platform source's fetch is not restricted.
func TestEgressRefusal(t *testing.T) {
	t.Parallel()
	var restricted bool
	f := newFixture(t, nil, func(ctx context.Context, _ *sourcev1.GitRepository) (Fetched, error) {
		_, restricted = egress.PolicyFrom(ctx)
		_, err := egress.NewDialer().DialContext(ctx, "tcp", "127.0.0.1:9") // refused before connecting
		if err != nil {
			return Fetched{}, fmt.Errorf("cloning: %v", err) // %v: the chain is lost, as some libraries do
		}
		return Fetched{Message: "fetched"}, nil
	})

	// Platform: no Tenant claims "ns"; the dial is attempted (and fails, port 9 is
	// closed), as an ordinary transient failure.
	if _, err := f.reconcile(t); err == nil {
		t.Fatal("the platform fetch of a closed port succeeded")
	}
	if restricted {
		t.Fatal("a platform source's fetch was restricted")
	}
	f.drainEvents()

	if err := f.c.Create(context.Background(), &tenancyv1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: tenancyv1.TenantSpec{Namespaces: []string{"ns"}}}); err != nil {
		t.Fatal(err)
	}
	res, err := f.reconcile(t)
	if err != nil || res != (ctrl.Result{RequeueAfter: interval}) {
		t.Fatalf("result %+v, %v; want the interval and no error", res, err)
	}
	if !restricted {
		t.Fatal("a tenant source's fetch was not restricted")
	}
	got := f.get(t)
	ready := apimeta.FindStatusCondition(got.Status.Conditions, meta.ReadyCondition)
	stalled := apimeta.FindStatusCondition(got.Status.Conditions, meta.StalledCondition)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != tenancyv1.EgressNotAllowedReason ||
		stalled == nil || stalled.Status != metav1.ConditionTrue {
		t.Fatalf("conditions %+v, want Ready=False and Stalled with EgressNotAllowed", got.Status.Conditions)
	}
	for _, w := range []string{"127.0.0.1:9", "loopback", "127.0.0.0/8"} {
		if !strings.Contains(ready.Message, w) {
			t.Errorf("message %q does not name %q", ready.Message, w)
		}
	}
	if got.Status.Artifact == nil || got.Status.Artifact.Digest != f.prev.Digest {
		t.Errorf("artifact %+v, want the last good one kept", got.Status.Artifact)
	}
	ev := f.drainEvents()
	if len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning EgressNotAllowed ") {
		t.Errorf("events %q, want one Warning EgressNotAllowed", ev)
	}
	// Again: no new Event while nothing changed.
	if _, err := f.reconcile(t); err != nil {
		t.Fatal(err)
	}
	if ev := f.drainEvents(); len(ev) != 0 {
		t.Errorf("events %q on a repeated refusal", ev)
	}
}
