package oci

import (
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"
)

func TestRepository(t *testing.T) {
	for raw, want := range map[string]string{
		"oci://registry.example.com/team/app":  "registry.example.com/team/app",
		"oci://localhost:5000/app/":            "localhost:5000/app",
		"https://registry.example.com/app":     "",
		"oci://":                               "",
		"oci://registry.example.com/App:bad!!": "",
	} {
		repo, err := repository(raw, false)
		if want == "" {
			if err == nil {
				t.Errorf("repository(%q) = %s, want an error", raw, repo)
			}
			continue
		}
		if err != nil || repo.String() != want {
			t.Errorf("repository(%q) = %s, %v; want %s", raw, repo, err, want)
		}
	}
}

func TestCredentials(t *testing.T) {
	b := func(s string) []byte { return []byte(s) }
	o, err := credentials(nil)
	if err != nil || o.Auth != authn.Anonymous {
		t.Fatalf("no secret: %+v, %v", o, err)
	}
	o, err = credentials(map[string][]byte{"username": b("u"), "password": b("p"), "ca.crt": b("PEM")})
	if err != nil || string(o.CA) != "PEM" {
		t.Fatalf("basic and ca: %+v, %v", o, err)
	}
	cfg, _ := o.Auth.Authorization()
	if cfg.Username != "u" || cfg.Password != "p" {
		t.Fatalf("auth %+v", cfg)
	}
	for _, tc := range []struct {
		data map[string][]byte
		want string
	}{
		{map[string][]byte{"username": b("u")}, "both username and password"},
		{map[string][]byte{"token": b("t")}, "keys: token"},
	} {
		if _, err := credentials(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("credentials(%v) = %v, want %q", tc.data, err, tc.want)
		}
	}
}

func TestNewestTag(t *testing.T) {
	c, _ := semver.NewConstraint("^1.0.0")
	got, ok := newestTag([]string{"latest", "1.0.0", "v1.4.0", "1.10.0-rc.1", "1.9.2", "2.0.0"}, c)
	if !ok || got != "1.9.2" {
		t.Fatalf("newestTag = %q, %v; want 1.9.2", got, ok)
	}
	if _, ok := newestTag([]string{"latest"}, c); ok {
		t.Fatal("a match among no versions")
	}
}
