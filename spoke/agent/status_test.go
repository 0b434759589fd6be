package agent

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/apply"
)

func TestNextStep(t *testing.T) {
	now := time.Now()
	digest := "sha256:"
	base := func() *fleetv1.Assignment {
		a := &fleetv1.Assignment{}
		a.UID = "u1"
		a.Generation = 2
		a.Spec.Artifact.Digest = digest + "new"
		a.Status.AppliedDigest = digest + "new"
		a.Status.ObservedGeneration = 2
		return a
	}
	healthy := appliedRecord{uid: "u1", generation: 2, digest: digest + "new", at: now.Add(-time.Minute), healthy: true}
	with := func(f func(*appliedRecord)) appliedRecord { r := healthy; f(&r); return r }

	for _, tc := range []struct {
		name string
		a    *fleetv1.Assignment
		last appliedRecord
		step step
		wait time.Duration
	}{
		{"up to date and healthy", base(), healthy, stepIdle, 4 * time.Minute},
		{"waiting for health", base(), with(func(r *appliedRecord) { r.healthy = false }), stepHealth, 0},
		{"never applied by this agent", base(), appliedRecord{}, stepApply, 0},
		{"other object with the same name", base(), with(func(r *appliedRecord) { r.uid = "u0" }), stepApply, 0},
		{"resync due", base(), with(func(r *appliedRecord) { r.at = now.Add(-6 * time.Minute) }), stepResync, 0},
		{"resync due while unhealthy", base(), with(func(r *appliedRecord) { r.at = now.Add(-6 * time.Minute); r.healthy = false }), stepResync, 0},
		{"new artifact", func() *fleetv1.Assignment { a := base(); a.Spec.Artifact.Digest = digest + "newer"; return a }(), healthy, stepApply, 0},
		{"new generation", func() *fleetv1.Assignment { a := base(); a.Generation = 3; return a }(), healthy, stepApply, 0},
		{"status lost", func() *fleetv1.Assignment { a := base(); a.Status = fleetv1.AssignmentStatus{}; return a }(), healthy, stepApply, 0},
		{"reconcile requested", func() *fleetv1.Assignment {
			a := base()
			a.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: "now"}
			return a
		}(), healthy, stepApply, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, wait := nextStep(tc.a, tc.last, now, 5*time.Minute)
			if step != tc.step || wait != tc.wait {
				t.Errorf("nextStep = %v, %s; want %v, %s", step, wait, tc.step, tc.wait)
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	dep := func(f func(a *fleetv1.Assignment)) *fleetv1.Assignment {
		a := &fleetv1.Assignment{}
		a.Generation = 1
		a.Spec.Artifact.Digest = "sha256:a"
		a.Status.AppliedDigest = "sha256:a"
		a.Status.Conditions = []metav1.Condition{{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, ObservedGeneration: 1}}
		if f != nil {
			f(a)
		}
		return a
	}
	for _, tc := range []struct {
		name string
		dep  *fleetv1.Assignment
		want string
	}{
		{"ready", dep(nil), ""},
		{"old artifact", dep(func(a *fleetv1.Assignment) { a.Spec.Artifact.Digest = "sha256:b" }), "its current artifact is not applied yet"},
		{"old generation", dep(func(a *fleetv1.Assignment) { a.Generation = 2 }), "it has not reported on its current generation yet"},
		{"not ready", dep(func(a *fleetv1.Assignment) {
			a.Status.Conditions[0].Status, a.Status.Conditions[0].Message = metav1.ConditionUnknown, "waiting for Deployment/a/b"
		}), "it is not Ready: waiting for Deployment/a/b"},
	} {
		if got := notReady(tc.dep); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestDeletesOnRelease(t *testing.T) {
	for _, tc := range []struct {
		policy string
		prune  bool
		want   bool
	}{
		{"", true, true}, {"", false, false},
		{meta.DeletionPolicyMirrorPrune, true, true}, {meta.DeletionPolicyMirrorPrune, false, false},
		{meta.DeletionPolicyDelete, false, true}, {meta.DeletionPolicyOrphan, true, false},
	} {
		a := &fleetv1.Assignment{}
		a.Spec.DeletionPolicy, a.Spec.Prune = tc.policy, tc.prune
		if got := deletesOnRelease(a); got != tc.want {
			t.Errorf("policy %q prune %v: got %v", tc.policy, tc.prune, got)
		}
	}
}

func TestDriftMessage(t *testing.T) {
	one := []apply.Change{{Ref: apply.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "demo", Name: "a"}, Drift: ".data.value"}}
	if got, want := driftMessage(one, "corrected"), "ConfigMap/demo/a (.data.value) corrected"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	two := append([]apply.Change{{Ref: apply.ObjectRef{Kind: "Service", Namespace: "demo", Name: "b"}, Drift: apply.DriftDeleted}}, one...)
	if got, want := driftMessage(two, "corrected"), "2 objects drifted, the last ConfigMap/demo/a (.data.value) corrected"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMessages(t *testing.T) {
	res := &apply.Result{Changes: []apply.Change{{Action: apply.Created}, {Action: apply.Unchanged}, {Action: apply.Unchanged}}}
	if got, want := appliedMessage("main@sha1:abc", res, 1), "applied revision main@sha1:abc: 3 objects (1 created, 2 unchanged), 1 pruned"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := appliedMessage("main@sha1:abc", res, 0), "applied revision main@sha1:abc: 3 objects (1 created, 2 unchanged)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	del := &apply.DeleteResult{Deleted: make([]apply.ObjectRef, 2), Kept: make([]apply.ObjectRef, 1)}
	for _, tc := range []struct {
		prune   bool
		entries int
		want    string
	}{
		{true, 3, "pruned 2 objects, kept 1 not owned by this Assignment or protected"},
		{false, 1, "orphaned 1 object"},
	} {
		if got := releasedMessage(tc.prune, del, tc.entries); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestServiceAccountUser(t *testing.T) {
	a := &fleetv1.Assignment{}
	if u := serviceAccountUser(a); u != "" {
		t.Errorf("no service account: %q", u)
	}
	a.Spec.ServiceAccountName = "deployer"
	if u := serviceAccountUser(a); u != "system:serviceaccount:default:deployer" {
		t.Errorf("got %q", u)
	}
	a.Spec.TargetNamespace = "team-a"
	if u := serviceAccountUser(a); u != "system:serviceaccount:team-a:deployer" {
		t.Errorf("got %q", u)
	}
}

func TestResyncAndRetry(t *testing.T) {
	d := func(v time.Duration) *metav1.Duration { return &metav1.Duration{Duration: v} }
	for _, tc := range []struct {
		name             string
		interval, retry  *metav1.Duration
		resync           time.Duration
		failures         int
		wantResync, want time.Duration
	}{
		{"no interval: the agent's resync", nil, nil, 5 * time.Minute, 1, 5 * time.Minute, 100 * time.Millisecond},
		{"shorter interval wins", d(30 * time.Second), nil, 5 * time.Minute, 3, 30 * time.Second, 400 * time.Millisecond},
		{"interval has a floor", d(time.Second), nil, 5 * time.Minute, 1, MinInterval, 100 * time.Millisecond},
		{"longer interval: the resync", d(time.Hour), nil, 5 * time.Minute, 1, 5 * time.Minute, 100 * time.Millisecond},
		{"a short resync stays", d(time.Second), nil, 2 * time.Second, 1, 2 * time.Second, 100 * time.Millisecond},
		{"backoff capped at the interval", d(30 * time.Second), nil, 5 * time.Minute, 20, 30 * time.Second, 30 * time.Second},
		{"retryInterval", d(time.Hour), d(7 * time.Second), 5 * time.Minute, 1, 5 * time.Minute, 7 * time.Second},
	} {
		a := &fleetv1.Assignment{}
		a.Spec.Interval, a.Spec.RetryInterval = tc.interval, tc.retry
		got := resyncInterval(a, tc.resync)
		if got != tc.wantResync {
			t.Errorf("%s: resync %s, want %s", tc.name, got, tc.wantResync)
		}
		if r := retryDelay(a, tc.failures, got); r != tc.want {
			t.Errorf("%s: retry %s, want %s", tc.name, r, tc.want)
		}
	}
}
