package trust

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/artifact"
)

func TestWatcherTakesUpSignedBundlesAndReportsOthers(t *testing.T) {
	ctx := context.Background()
	k1, _ := artifact.GenerateKey()
	k2, _ := artifact.GenerateKey()
	rogue, _ := artifact.GenerateKey()
	set, _ := Open(filepath.Join(t.TempDir(), FileName), []ed25519.PublicKey{pub(k1)})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "flotilla-cluster-a", Name: fleetv1.TrustConfigMapName}}
	c := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(cm).Build()
	rec := events.NewFakeRecorder(10)
	changes := 0
	w := &Watcher{Client: c, Set: set, Recorder: rec, OnChange: func(context.Context) { changes++ }}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: cm.Namespace, Name: cm.Name}}

	publish := func(bundle, sigs []byte) {
		t.Helper()
		cm.Data = map[string]string{artifact.TrustBundleKey: string(bundle), artifact.TrustSignaturesKey: string(sigs)}
		if err := c.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	next := func() string {
		select {
		case e := <-rec.Events:
			return e
		default:
			return ""
		}
	}

	// An empty ConfigMap is not an attack, just early.
	if _, err := w.Reconcile(ctx, req); err != nil || next() != "" {
		t.Fatalf("empty ConfigMap: %v", err)
	}
	publish(bundle(t, 9, []ed25519.PrivateKey{rogue}, rogue))
	if e := next(); !strings.Contains(e, RejectedReason) || changes != 0 {
		t.Fatalf("forged bundle: event %q, changes %d", e, changes)
	}
	publish(bundle(t, 2, []ed25519.PrivateKey{k2, k1}, k2, k1))
	if e := next(); !strings.Contains(e, UpdatedReason) || changes != 1 || set.Sequence() != 2 {
		t.Fatalf("rotation bundle: event %q, changes %d, sequence %d", e, changes, set.Sequence())
	}
	publish(bundle(t, 1, []ed25519.PrivateKey{k1}, k1))
	if e := next(); !strings.Contains(e, RejectedReason) || !strings.Contains(e, "older") || changes != 1 {
		t.Fatalf("replayed bundle: event %q, changes %d", e, changes)
	}
}
