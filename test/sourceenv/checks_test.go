package sourceenv

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

// The checks are what every source test's verdict rests on: each must refuse what
// it does not describe.
func TestChecks(t *testing.T) {
	t.Parallel()
	ready := &sourcev1.OCIRepository{
		ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Status: sourcev1.OCIRepositoryStatus{
			ObservedGeneration:     2,
			LastHandledReconcileAt: "t1",
			Artifact:               &meta.Artifact{Revision: "v1"},
			Conditions:             []metav1.Condition{{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, Reason: meta.SucceededReason}},
		},
	}
	stale := ready.DeepCopy()
	stale.Generation = 3
	failed := &sourcev1.GitRepository{Status: sourcev1.GitRepositoryStatus{Conditions: []metav1.Condition{
		{Type: meta.ReadyCondition, Status: metav1.ConditionFalse, Reason: "AuthenticationFailed", Message: "GET x: 401 Unauthorized"},
		{Type: meta.StalledCondition, Status: metav1.ConditionTrue, Reason: "InvalidURL", Message: "bad"},
	}}}
	for _, tc := range []struct {
		name  string
		check func(Source) error
		obj   Source
		ok    bool
	}{
		{"ready", Ready, ready, true},
		{"ready, an older generation", Ready, stale, false},
		{"ready with the revision", ReadyWith("v1"), ready, true},
		{"ready with another revision", ReadyWith("v2"), ready, false},
		{"failed with", FailedWith("AuthenticationFailed", "401"), failed, true},
		{"failed with another reason", FailedWith("InvalidURL", ""), failed, false},
		{"failed with another message", FailedWith("AuthenticationFailed", "403"), failed, false},
		{"failed, but it is ready", FailedWith("", ""), ready, false},
		{"stalled with", StalledWith("InvalidURL", "bad"), failed, true},
		{"condition is", ConditionIs(meta.ReadyCondition, metav1.ConditionTrue), ready, true},
		{"condition missing", ConditionIs(meta.ReconcilingCondition, metav1.ConditionTrue), ready, false},
		{"handled", Handled("t1"), ready, true},
		{"not handled", Handled("t2"), ready, false},
		{"no artifact", NoArtifact, failed, true},
		{"an artifact", NoArtifact, ready, false},
	} {
		if err := tc.check(tc.obj); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
