package helm

import (
	"strings"
	"testing"
)

func TestIndexURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://charts.example.com":         "https://charts.example.com/index.yaml",
		"https://charts.example.com/stable/": "https://charts.example.com/stable/index.yaml",
		"oci://registry.example.com/charts":  "",
		"charts.example.com":                 "",
	} {
		got, err := indexURL(raw)
		if want == "" {
			if err == nil {
				t.Errorf("indexURL(%q) = %q, want an error", raw, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("indexURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

func TestCredentialsFrom(t *testing.T) {
	b := func(s string) []byte { return []byte(s) }
	c, err := credentialsFrom(map[string][]byte{"username": b("u"), "password": b("p")})
	if err != nil || c.Username != "u" || c.Password != "p" {
		t.Fatalf("%+v, %v", c, err)
	}
	for _, tc := range []struct {
		data map[string][]byte
		want string
	}{
		{map[string][]byte{"password": b("p")}, "both username and password"},
		{map[string][]byte{"token": b("t")}, "keys: token"},
	} {
		if _, err := credentialsFrom(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("credentialsFrom(%v) = %v, want %q", tc.data, err, tc.want)
		}
	}
	if _, err := (credentials{CA: b("not a PEM")}).client(nil); err == nil {
		t.Fatal("a CA without certificates was accepted")
	}
}

func TestParseIndex(t *testing.T) {
	if _, err := parseIndex([]byte("apiVersion: v1\nentries: {}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := parseIndex([]byte("entries: {}\n")); err == nil {
		t.Fatal("an index without apiVersion was accepted")
	}
}
