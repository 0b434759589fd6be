package capi

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/flotilla-dev/flotilla/hub/registration"
)

func TestFleetClusterName(t *testing.T) {
	long := strings.Repeat("n", 40)
	for _, tc := range []struct{ ns, name, want string }{
		{"default", "wl", "default-wl"},
		{"team-a", "prod.eu", "team-a-prod-eu"},
	} {
		if got := FleetClusterName(tc.ns, tc.name); got != tc.want {
			t.Errorf("FleetClusterName(%q, %q) = %q, want %q", tc.ns, tc.name, got, tc.want)
		}
	}
	a, b := FleetClusterName(long, "cluster-a"), FleetClusterName(long, "cluster-b")
	for _, n := range []string{a, b} {
		if len(n) > registration.MaxClusterNameLength || len(validation.IsDNS1123Label(n)) > 0 {
			t.Errorf("%q is not a valid fleet Cluster name", n)
		}
	}
	if a == b {
		t.Errorf("distinct CAPI Clusters share the fleet name %q", a)
	}
	if FleetClusterName(long, "cluster-a") != a {
		t.Error("not stable")
	}
}

func TestAllowedLabel(t *testing.T) {
	allowed := []string{"env", "fleet.example.com/*"}
	for key, want := range map[string]bool{
		"env": true, "fleet.example.com/region": true, "fleet.example.com/": true,
		"tier": false, "environment": false, "evil.fleet.example.com/x": false,
	} {
		if got := AllowedLabel(allowed, key); got != want {
			t.Errorf("AllowedLabel(%q) = %v, want %v", key, got, want)
		}
	}
	if AllowedLabel(nil, "env") {
		t.Error("no allowed keys must copy no label")
	}
}
