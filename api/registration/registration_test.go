package registration

import "testing"

func TestClusterFromUsername(t *testing.T) {
	for _, tc := range []struct {
		user, want string
		ok         bool
	}{
		{ServiceAccountUsername("spoke-1"), "spoke-1", true},
		{"system:serviceaccount:flotilla-cluster-a:flotilla-agent", "a", true},
		{"system:serviceaccount:flotilla-cluster-a:default", "", false},
		{"system:serviceaccount:kube-system:flotilla-agent", "", false},
		{"system:serviceaccount:flotilla-cluster-:flotilla-agent", "", false},
		{"system:serviceaccount:flotilla-cluster-a:b:flotilla-agent", "", false},
		{"admin", "", false},
	} {
		got, err := ClusterFromUsername(tc.user)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ClusterFromUsername(%q) = %q, %v; want %q, ok=%v", tc.user, got, err, tc.want, tc.ok)
		}
	}
}
