package version

import "testing"

func TestCompatible(t *testing.T) {
	for _, c := range []struct {
		agent, hub string
		skew       int
		skewOK     bool
		compatible bool
	}{
		{"v0.4.0", "v0.4.2", 0, true, true},
		{"v0.3.9", "v0.4.0", -1, true, true},
		{"v0.5.0", "v0.4.0", 1, true, true},
		{"v0.2.0", "v0.4.0", -2, true, false},
		{"v0.6.1", "v0.4.0", 2, true, false},
		{"v1.4.0", "v0.4.0", 0, false, false},
		{"dev", "v0.4.0", 0, false, true},
		{"v0.4.0", "dev", 0, false, true},
	} {
		skew, ok := MinorSkew(c.agent, c.hub)
		if skew != c.skew || ok != c.skewOK {
			t.Errorf("MinorSkew(%s, %s) = %d, %v; want %d, %v", c.agent, c.hub, skew, ok, c.skew, c.skewOK)
		}
		if got := Compatible(c.agent, c.hub); got != c.compatible {
			t.Errorf("Compatible(%s, %s) = %v, want %v", c.agent, c.hub, got, c.compatible)
		}
	}
}
