package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/source/versions"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

const (
	kindReason = "KindFailed"
	interval   = 7 * time.Minute
)

// fetchFunc is a Fetcher made of a function.
type fetchFunc func(ctx context.Context, obj *sourcev1.GitRepository) (Fetched, error)

func (f fetchFunc) Fetch(ctx context.Context, obj *sourcev1.GitRepository) (Fetched, error) {
	return f(ctx, obj)
}

// fixture is a skeleton over a fake API server with one GitRepository, generation 2,
// whose status already holds a stored artifact for generation 1.
type fixture struct {
	r      *Reconciler[*sourcev1.GitRepository]
	c      client.Client
	events *events.FakeRecorder
	prev   meta.Artifact
	calls  int
}

func newFixture(t *testing.T, change func(*sourcev1.GitRepository), fetch fetchFunc) *fixture {
	t.Helper()
	store, err := storage.New(t.TempDir(), "http://hub.invalid")
	if err != nil {
		t.Fatal(err)
	}
	digest, err := store.Put([]byte("previous"))
	if err != nil {
		t.Fatal(err)
	}
	size := int64(8)
	f := &fixture{
		events: events.NewFakeRecorder(20),
		prev: meta.Artifact{URL: store.URL(digest), Revision: "main@sha1:1", Digest: digest, Size: &size,
			LastUpdateTime: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
	}
	obj := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "repo", Generation: 2},
		Spec:       sourcev1.GitRepositorySpec{URL: "https://example.invalid/r.git", Interval: metav1.Duration{Duration: interval}},
		Status:     sourcev1.GitRepositoryStatus{ObservedGeneration: 1, Artifact: f.prev.DeepCopy()},
	}
	if change != nil {
		change(obj)
	}
	f.c = fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(obj).WithStatusSubresource(obj).Build()
	f.r = &Reconciler[*sourcev1.GitRepository]{
		Deps: Deps{Client: f.c, Store: store, Recorder: f.events,
			Now: func() time.Time { return time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC) }},
		Kind: Kind[*sourcev1.GitRepository]{
			Name: "Test", DefaultInterval: time.Hour, FailureReason: kindReason,
		},
		Fetcher: fetchFunc(func(ctx context.Context, obj *sourcev1.GitRepository) (Fetched, error) {
			f.calls++
			return fetch(ctx, obj)
		}),
	}
	return f
}

func (f *fixture) reconcile(t *testing.T) (ctrl.Result, error) {
	t.Helper()
	return f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "ns", Name: "repo"}})
}

func (f *fixture) get(t *testing.T) *sourcev1.GitRepository {
	t.Helper()
	obj := &sourcev1.GitRepository{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "repo"}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func (f *fixture) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-f.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func failWith(err error) fetchFunc {
	return func(context.Context, *sourcev1.GitRepository) (Fetched, error) { return Fetched{}, err }
}

// The same causes fail the same way whichever kind meets them: the shared helpers
// classify, the skeleton turns the class into conditions and a requeue.
func TestFailureClassification(t *testing.T) {
	t.Parallel()
	missingSecret := func(ctx context.Context, obj *sourcev1.GitRepository) (Fetched, error) {
		_, err := credentials.Load(ctx, fake.NewClientBuilder().Build(), obj.Namespace, &meta.LocalObjectReference{Name: "creds"}, credentials.Options{Scheme: "https"})
		return Fetched{}, err
	}
	badSecret := func(context.Context, *sourcev1.GitRepository) (Fetched, error) {
		_, err := credentials.Parse(map[string][]byte{"username": []byte("u")}, credentials.Options{Scheme: "https"})
		return Fetched{}, err
	}
	badCA := func(context.Context, *sourcev1.GitRepository) (Fetched, error) {
		_, err := credentials.Credentials{CA: []byte("not PEM")}.Transport(nil)
		return Fetched{}, err
	}
	sshWithoutSecret := func(context.Context, *sourcev1.GitRepository) (Fetched, error) {
		_, err := credentials.Parse(nil, credentials.Options{Scheme: "ssh"})
		return Fetched{}, err
	}
	badRange := func(context.Context, *sourcev1.GitRepository) (Fetched, error) {
		_, err := versions.Range("not a range")
		return Fetched{}, fmt.Errorf("listing tags: %w", err)
	}
	timeout := func(ctx context.Context, _ *sourcev1.GitRepository) (Fetched, error) {
		<-ctx.Done()
		return Fetched{}, fmt.Errorf("cloning: %w", ctx.Err())
	}
	for _, tc := range []struct {
		name   string
		fetch  fetchFunc
		spec   func(*sourcev1.GitRepository)
		class  outcome.Class
		reason string
		msg    string
	}{
		{"unclassified error is transient", failWith(errors.New("connection refused")), nil, outcome.Transient, kindReason, "connection refused"},
		{"waiting without a reason takes the kind's", failWith(outcome.Fail(outcome.Waiting, "", errors.New("no tag matches"))), nil, outcome.Waiting, kindReason, "no tag matches"},
		{"stalled", failWith(outcome.Fail(outcome.Stalled, meta.InvalidURLReason, errors.New("bad URL"))), nil, outcome.Stalled, meta.InvalidURLReason, "bad URL"},
		{"missing secret waits", missingSecret, nil, outcome.Waiting, sourcev1.SecretNotFoundReason, "secret ns/creds not found"},
		{"unusable secret is transient", badSecret, nil, outcome.Transient, sourcev1.AuthenticationFailedReason, "both username and password"},
		{"ca.crt without a certificate is transient", badCA, nil, outcome.Transient, sourcev1.AuthenticationFailedReason, "no PEM certificate"},
		{"ssh without a secret stalls", sshWithoutSecret, nil, outcome.Stalled, kindReason, "spec.secretRef"},
		{"invalid semver range stalls", badRange, nil, outcome.Stalled, sourcev1.InvalidSemVerReason, "listing tags: invalid semver range"},
		{"timeout is transient and says so", timeout, func(o *sourcev1.GitRepository) { o.Spec.Timeout = &metav1.Duration{Duration: 20 * time.Millisecond} },
			outcome.Transient, kindReason, "cloning: context deadline exceeded (timeout 20ms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.spec, tc.fetch)
			res, err := f.reconcile(t)
			switch tc.class {
			case outcome.Transient:
				if err == nil || res != (ctrl.Result{}) {
					t.Fatalf("result %+v, %v; want the error back for a back-off", res, err)
				}
			case outcome.Waiting:
				if err != nil || res != (ctrl.Result{RequeueAfter: interval}) {
					t.Fatalf("result %+v, %v; want a requeue at the interval", res, err)
				}
			case outcome.Stalled:
				if err != nil || res != (ctrl.Result{}) {
					t.Fatalf("result %+v, %v; want no requeue", res, err)
				}
			}
			got := f.get(t)
			ready := apimeta.FindStatusCondition(got.Status.Conditions, meta.ReadyCondition)
			if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != tc.reason || !strings.Contains(ready.Message, tc.msg) {
				t.Fatalf("Ready = %+v, want False/%s with %q", ready, tc.reason, tc.msg)
			}
			stalled := apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.StalledCondition)
			reconciling := apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.ReconcilingCondition)
			if stalled != (tc.class == outcome.Stalled) || reconciling == stalled {
				t.Fatalf("Stalled=%v Reconciling=%v for a %v failure", stalled, reconciling, tc.class)
			}
			if got.Status.ObservedGeneration != 1 {
				t.Fatalf("observedGeneration %d moved on a failure", got.Status.ObservedGeneration)
			}
			if diff := cmp.Diff(&f.prev, got.Status.Artifact); diff != "" {
				t.Fatalf("the previous artifact changed on a failure:\n%s", diff)
			}
			if !apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.ArtifactInStorageCondition) {
				t.Fatal("the previous artifact is still stored, ArtifactInStorage should be True")
			}
			if ev := f.drainEvents(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning "+tc.reason+" ") {
				t.Fatalf("events %q, want one Warning %s", ev, tc.reason)
			}
		})
	}
}

func TestSuccess(t *testing.T) {
	t.Parallel()
	size := int64(3)
	next := meta.Artifact{URL: "http://hub.invalid/x", Revision: "main@sha1:2", Digest: "sha256:new", Size: &size}
	var result Fetched
	f := newFixture(t, func(o *sourcev1.GitRepository) {
		o.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: "now"}
	}, func(context.Context, *sourcev1.GitRepository) (Fetched, error) { return result, nil })

	result = Fetched{Artifact: &next}
	res, err := f.reconcile(t)
	if err != nil || res != (ctrl.Result{RequeueAfter: interval}) {
		t.Fatalf("result %+v, %v", res, err)
	}
	got := f.get(t)
	ready := apimeta.FindStatusCondition(got.Status.Conditions, meta.ReadyCondition)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Message != "stored artifact for revision main@sha1:2" {
		t.Fatalf("Ready = %+v", ready)
	}
	if apimeta.FindStatusCondition(got.Status.Conditions, meta.ReconcilingCondition) != nil {
		t.Fatal("Reconciling left after a success")
	}
	if got.Status.ObservedGeneration != 2 || got.Status.LastHandledReconcileAt != "now" {
		t.Fatalf("observedGeneration %d, lastHandledReconcileAt %q", got.Status.ObservedGeneration, got.Status.LastHandledReconcileAt)
	}
	if got.Status.Artifact.Revision != "main@sha1:2" || !got.Status.Artifact.LastUpdateTime.Equal(&metav1.Time{Time: f.r.Now()}) {
		t.Fatalf("artifact %+v", got.Status.Artifact)
	}
	// The new digest is not in the store: the condition says so rather than trusting Fetch.
	if c := apimeta.FindStatusCondition(got.Status.Conditions, meta.ArtifactInStorageCondition); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("ArtifactInStorage = %+v", c)
	}
	if ev := f.drainEvents(); !cmp.Equal(ev, []string{"Normal NewArtifact stored artifact for revision main@sha1:2"}) {
		t.Fatalf("events %q", ev)
	}

	t.Run("unchanged fetch writes nothing", func(t *testing.T) {
		before := f.get(t)
		if _, err := f.reconcile(t); err != nil {
			t.Fatal(err)
		}
		after := f.get(t)
		if after.ResourceVersion != before.ResourceVersion {
			t.Fatalf("status patched for an unchanged fetch: %s -> %s", before.ResourceVersion, after.ResourceVersion)
		}
		if ev := f.drainEvents(); len(ev) != 0 {
			t.Fatalf("events %q for an unchanged fetch", ev)
		}
	})

	t.Run("one event per state change", func(t *testing.T) {
		f.r.Fetcher = fetchFunc(failWith(errors.New("connection refused")))
		for range 3 {
			f.reconcile(t) //nolint:errcheck // transient, as asserted above
		}
		f.r.Fetcher = fetchFunc(func(context.Context, *sourcev1.GitRepository) (Fetched, error) { return result, nil })
		for range 2 {
			if _, err := f.reconcile(t); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"Warning KindFailed connection refused", "Normal Succeeded stored artifact for revision main@sha1:2"}
		if ev := f.drainEvents(); !cmp.Equal(ev, want) {
			t.Fatalf("events %q, want %q", ev, want)
		}
	})

	t.Run("a kind without an artifact", func(t *testing.T) {
		f.r.Kind.KeepsArtifact = func(*sourcev1.GitRepository) bool { return false }
		result = Fetched{Message: "reachable"}
		if _, err := f.reconcile(t); err != nil {
			t.Fatal(err)
		}
		got := f.get(t)
		if got.Status.Artifact != nil || apimeta.FindStatusCondition(got.Status.Conditions, meta.ArtifactInStorageCondition) != nil {
			t.Fatalf("artifact %+v, conditions %+v", got.Status.Artifact, got.Status.Conditions)
		}
		if c := apimeta.FindStatusCondition(got.Status.Conditions, meta.ReadyCondition); c.Message != "reachable" {
			t.Fatalf("Ready = %+v", c)
		}
	})
}

func TestSuspendedIsLeftAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *sourcev1.GitRepository) {
		o.Spec.Suspend = true
		o.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: "now"}
	}, failWith(errors.New("must not be called")))
	before := f.get(t)
	if res, err := f.reconcile(t); err != nil || res != (ctrl.Result{}) {
		t.Fatalf("result %+v, %v", res, err)
	}
	after := f.get(t)
	if f.calls != 0 || after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("a suspended object was fetched (%d) or written (%s -> %s)", f.calls, before.ResourceVersion, after.ResourceVersion)
	}
}

func TestDefaultsAndGone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *sourcev1.GitRepository) { o.Spec.Interval = metav1.Duration{} },
		func(ctx context.Context, _ *sourcev1.GitRepository) (Fetched, error) {
			if d, ok := ctx.Deadline(); !ok || time.Until(d) > time.Minute {
				return Fetched{}, fmt.Errorf("deadline %v, want the default timeout", d)
			}
			return Fetched{}, outcome.Fail(outcome.Waiting, "", errors.New("later"))
		})
	if res, err := f.reconcile(t); err != nil || res.RequeueAfter != time.Hour {
		t.Fatalf("result %+v, %v; want the default interval", res, err)
	}
	if err := f.c.Delete(context.Background(), f.get(t)); err != nil {
		t.Fatal(err)
	}
	if res, err := f.reconcile(t); err != nil || res != (ctrl.Result{}) {
		t.Fatalf("a deleted object: %+v, %v", res, err)
	}
}
