package sourceenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/env"
)

// Source is a source object as the tests see it; GitRepository, OCIRepository and
// HelmRepository are.
type Source interface {
	client.Object
	GetConditions() []metav1.Condition
	GetArtifact() *meta.Artifact
	GetObservedGeneration() int64
	GetLastHandledReconcileAt() string
}

// Hub is a control plane with the Flotilla CRDs and a manager running one source
// controller, whose artifacts Store keeps and an HTTP server serves.
type Hub struct {
	Client client.Client
	Store  *storage.Store
}

// Start starts the control plane name, the Store and its HTTP server, and a manager
// on which setup registers the controller under test with that Store. All of it
// stops when t ends.
func Start(t testing.TB, name string, setup func(mgr ctrl.Manager, store *storage.Store) error) *Hub {
	t.Helper()
	cp := env.StartControlPlane(t, name, true)
	store, err := storage.New(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	artifacts := httptest.NewServer(store.Handler())
	t.Cleanup(artifacts.Close)
	store.SetBaseURL(artifacts.URL)
	env.StartManager(t, cp.Config(), func(mgr ctrl.Manager) error { return setup(mgr, store) })
	return &Hub{Client: cp.Client(), Store: store}
}

// Namespace creates the namespace name; each test takes its own.
func (h *Hub) Namespace(t testing.TB, name string) string {
	t.Helper()
	h.Create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return name
}

// Secret creates a Secret with data.
func (h *Hub) Secret(t testing.TB, ns, name string, data map[string]string) {
	t.Helper()
	h.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data})
}

// Create creates obj.
func (h *Hub) Create(t testing.TB, obj client.Object) {
	t.Helper()
	if err := h.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, client.ObjectKeyFromObject(obj), err)
	}
}

// Get re-reads obj.
func (h *Hub) Get(t testing.TB, obj client.Object) {
	t.Helper()
	if err := h.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("reading %T %s: %v", obj, client.ObjectKeyFromObject(obj), err)
	}
}

// Update re-reads obj, lets change change it and writes it, again on conflicts
// with the controller's status patches.
func (h *Hub) Update(t testing.TB, obj client.Object, change func()) {
	t.Helper()
	for range 10 {
		h.Get(t, obj)
		change()
		err := h.Client.Update(context.Background(), obj)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("updating %T %s: %v", obj, client.ObjectKeyFromObject(obj), err)
		}
	}
	t.Fatalf("updating %T %s: too many conflicts", obj, client.ObjectKeyFromObject(obj))
}

// RequestReconcile sets the reconcile-requested-at annotation to a new value, which
// it returns, as `flotilla reconcile` does.
func (h *Hub) RequestReconcile(t testing.TB, obj client.Object) string {
	t.Helper()
	v := time.Now().Format(time.RFC3339Nano)
	h.Update(t, obj, func() { setRequestedAt(obj, v) })
	return v
}

func setRequestedAt(obj client.Object, v string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[meta.ReconcileRequestedAtAnnotation] = v
	obj.SetAnnotations(a)
}

// WaitFor re-reads obj until every check holds, and fails with the first one's
// complaint and the status.
func (h *Hub) WaitFor(t testing.TB, obj Source, checks ...func(Source) error) {
	t.Helper()
	env.Eventually(t, fmt.Sprintf("%T %s", obj, client.ObjectKeyFromObject(obj)), func() error {
		if err := h.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		for _, check := range checks {
			if err := check(obj); err != nil {
				return fmt.Errorf("%w\nconditions: %+v\nartifact: %+v", err, obj.GetConditions(), obj.GetArtifact())
			}
		}
		return nil
	})
}

// Settle returns once the controller has handled everything queued before the call.
// It asks for a reconcile of other (any object of the same kind that is not
// suspended) twice, one after the other, and waits until each is handled: with one
// worker the queue is first in, first out, except that an object changed while it is
// being reconciled goes to the back, which the second round covers. This is the
// barrier before asserting that something did not happen.
func (h *Hub) Settle(t testing.TB, other Source) {
	t.Helper()
	for range 2 {
		at := h.RequestReconcile(t, other)
		h.WaitFor(t, other, Handled(at))
	}
}

// EventReasons lists "<type>/<reason>" of the Events about the object name in ns.
func (h *Hub) EventReasons(t testing.TB, ns, name string) []string {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := h.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			reasons = append(reasons, e.Type+"/"+e.Reason)
		}
	}
	sort.Strings(reasons)
	return reasons
}

// WaitForEvent waits for an Event "<type>/<reason>" about obj.
func (h *Hub) WaitForEvent(t testing.TB, obj client.Object, typeReason string) {
	t.Helper()
	env.Eventually(t, fmt.Sprintf("event %s about %s", typeReason, client.ObjectKeyFromObject(obj)), func() error {
		reasons := h.EventReasons(t, obj.GetNamespace(), obj.GetName())
		for _, r := range reasons {
			if r == typeReason {
				return nil
			}
		}
		return fmt.Errorf("events %v", reasons)
	})
}

// Download fetches the artifact over HTTP, checks its digest and size, and returns
// its files.
func Download(t testing.TB, a *meta.Artifact) map[string]string {
	t.Helper()
	resp, err := http.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", a.URL, resp.Status)
	}
	if d := artifact.Digest(data); d != a.Digest {
		t.Fatalf("downloaded digest %s, status says %s", d, a.Digest)
	}
	if a.Size == nil || *a.Size != int64(len(data)) {
		t.Fatalf("size %v, downloaded %d bytes", a.Size, len(data))
	}
	files, err := artifact.Unpack(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range files {
		out[k] = string(v)
	}
	return out
}
