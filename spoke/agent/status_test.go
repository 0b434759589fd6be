package agent

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/apply"
)

func TestResyncWait(t *testing.T) {
	now := time.Now()
	digest := "sha256:"
	ready := func(a *fleetv1.Assignment) *fleetv1.Assignment {
		a.Status.Conditions = []metav1.Condition{{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, ObservedGeneration: a.Generation}}
		return a
	}
	base := func() *fleetv1.Assignment {
		a := &fleetv1.Assignment{}
		a.UID = "u1"
		a.Generation = 2
		a.Spec.Artifact.Digest = digest + "new"
		a.Status.AppliedDigest = digest + "new"
		a.Status.ObservedGeneration = 2
		return ready(a)
	}
	fresh := appliedRecord{uid: "u1", at: now.Add(-time.Minute)}

	for _, tc := range []struct {
		name   string
		a      *fleetv1.Assignment
		last   appliedRecord
		wait   time.Duration
		isIdle bool
	}{
		{"up to date", base(), fresh, 4 * time.Minute, true},
		{"never applied by this agent", base(), appliedRecord{}, 0, false},
		{"other object with the same name", base(), appliedRecord{uid: "u0", at: now}, 0, false},
		{"resync due", base(), appliedRecord{uid: "u1", at: now.Add(-6 * time.Minute)}, 0, false},
		{"new artifact", func() *fleetv1.Assignment { a := base(); a.Spec.Artifact.Digest = digest + "newer"; return a }(), fresh, 0, false},
		{"new generation", func() *fleetv1.Assignment { a := base(); a.Generation = 3; return a }(), fresh, 0, false},
		{"not ready", func() *fleetv1.Assignment {
			a := base()
			a.Status.Conditions[0].Status = metav1.ConditionFalse
			return a
		}(), fresh, 0, false},
		{"reconcile requested", func() *fleetv1.Assignment {
			a := base()
			a.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: "now"}
			return a
		}(), fresh, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait, idle := resyncWait(tc.a, tc.last, now, 5*time.Minute)
			if idle != tc.isIdle || wait != tc.wait {
				t.Errorf("resyncWait = %s, %v; want %s, %v", wait, idle, tc.wait, tc.isIdle)
			}
		})
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
