package agent

import (
	"strings"
	"testing"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// TestIdentityProblem: the spoke-side wall behind the hub's admission. A tenant's
// Assignment never applies as the agent itself, whatever it says.
func TestIdentityProblem(t *testing.T) {
	r := &reconciler{namespace: "flotilla-system"}
	for _, tc := range []struct {
		name string
		spec fleetv1.AssignmentSpec
		want string // part of the refusal; "" when allowed
	}{
		{"platform as the agent", fleetv1.AssignmentSpec{}, ""},
		{"platform as an account", fleetv1.AssignmentSpec{ServiceAccountName: "ops", TargetNamespace: "ops"}, ""},
		{"tenant as its identity", fleetv1.AssignmentSpec{Tenant: "a", ServiceAccountName: "a", ServiceAccountNamespace: "app-a"}, ""},
		{"tenant as the agent", fleetv1.AssignmentSpec{Tenant: "a"}, "names no service account"},
		{"tenant in the agent's namespace", fleetv1.AssignmentSpec{Tenant: "a", ServiceAccountName: "flotilla-agent", ServiceAccountNamespace: "flotilla-system"}, "agent's namespace"},
		{"tenant in the agent's namespace by target", fleetv1.AssignmentSpec{Tenant: "a", ServiceAccountName: "x", TargetNamespace: "flotilla-system"}, "agent's namespace"},
	} {
		got := r.identityProblem(&fleetv1.Assignment{Spec: tc.spec})
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
