package v1alpha1

import (
	"strings"
	"testing"
)

func TestAssignmentName(t *testing.T) {
	for _, tc := range []struct{ kind, want string }{
		{"Kustomization", "ks.apps.web"},
		{"HelmRelease", "hr.apps.web"},
		{"AgentRollout", "ar.apps.web"},
		{"Widget", "widget.apps.web"},
	} {
		if got := AssignmentName(tc.kind, "apps", "web"); got != tc.want {
			t.Errorf("AssignmentName(%s) = %q, want %q", tc.kind, got, tc.want)
		}
	}

	// Too long for a name: cut, with a hash of the whole so that names stay distinct.
	long := strings.Repeat("a", 250)
	a, b := AssignmentName("Kustomization", "apps", long), AssignmentName("Kustomization", "apps", long+"b")
	if len(a) != maxName || len(b) != maxName {
		t.Errorf("long names are %d and %d characters, want %d", len(a), len(b), maxName)
	}
	if a == b || !strings.HasPrefix(a, "ks.apps.aaa") {
		t.Errorf("long names %q and %q: want distinct, prefixed by ks.apps.", a, b)
	}
	if again := AssignmentName("Kustomization", "apps", long); again != a {
		t.Errorf("AssignmentName is not stable: %q then %q", a, again)
	}
}

func TestOwnerLabels(t *testing.T) {
	l := OwnerLabels("Kustomization", "apps", "web")
	if len(l) != 3 || l[OwnerKindLabel] != "Kustomization" || l[OwnerNamespaceLabel] != "apps" || l[OwnerNameLabel] != "web" {
		t.Errorf("OwnerLabels = %v", l)
	}
}

func TestAgentVersion(t *testing.T) {
	for _, tc := range []struct{ image, version, want string }{
		{"ghcr.io/flotilla-dev/flotilla-agent:v0.5.0", "", "v0.5.0"},
		{"registry.example.com:5000/flotilla-agent:v1.2.3", "", "v1.2.3"},
		{"registry.example.com:5000/flotilla-agent", "", ""},
		{"ghcr.io/flotilla-dev/flotilla-agent@sha256:0123", "", ""},
		{"ghcr.io/flotilla-dev/flotilla-agent:v1.2.3@sha256:0123", "v1.2.3", "v1.2.3"},
		{"flotilla-agent:latest", "v0.6.0", "v0.6.0"},
	} {
		s := AgentRolloutSpec{Image: tc.image, Version: tc.version}
		if got := s.AgentVersion(); got != tc.want {
			t.Errorf("AgentVersion of %q (version %q) = %q, want %q", tc.image, tc.version, got, tc.want)
		}
	}
}
