package oci

import (
	"net/http"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
)

func TestRepository(t *testing.T) {
	t.Parallel()
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

func TestPullOptionsFor(t *testing.T) {
	t.Parallel()
	o, err := pullOptionsFor(credentials.Credentials{}, nil)
	if err != nil || o.Auth != authn.Anonymous || o.Transport != http.DefaultTransport {
		t.Fatalf("no secret: %+v, %v", o, err)
	}
	o, err = pullOptionsFor(credentials.Credentials{Username: "u", Password: "p"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := o.Auth.Authorization()
	if cfg.Username != "u" || cfg.Password != "p" {
		t.Fatalf("auth %+v", cfg)
	}
	if _, err := pullOptionsFor(credentials.Credentials{CA: []byte("PEM")}, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a ca.crt without certificates: %v", err)
	}
}
