package credentials

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

func b(s string) []byte { return []byte(s) }

func TestParse(t *testing.T) {
	t.Parallel()
	https := Options{Scheme: "https", BearerToken: true}
	registry := Options{Scheme: "oci"}
	for _, tc := range []struct {
		name    string
		data    map[string][]byte
		o       Options
		want    Credentials
		wantErr string
		class   outcome.Class
	}{
		{"no secret", nil, https, Credentials{}, "", 0},
		{"basic", map[string][]byte{"username": b("u"), "password": b("p")}, https, Credentials{Username: "u", Password: "p"}, "", 0},
		{"bearer", map[string][]byte{"bearerToken": b("tok\n")}, https, Credentials{BearerToken: "tok"}, "", 0},
		{"basic and ca", map[string][]byte{"username": b("u"), "password": b("p"), "ca.crt": b("PEM")}, https,
			Credentials{Username: "u", Password: "p", CA: b("PEM")}, "", 0},
		{"ca only", map[string][]byte{"ca.crt": b("PEM")}, https, Credentials{CA: b("PEM")}, "", 0},
		{"registry basic and ca", map[string][]byte{"username": b("u"), "password": b("p"), "ca.crt": b("PEM")}, registry,
			Credentials{Username: "u", Password: "p", CA: b("PEM")}, "", 0},
		{"dockerconfigjson for the host", map[string][]byte{".dockerconfigjson": b(`{"auths":{"other.example":{"username":"x","password":"y"},"https://reg.example:5000/v1/":{"auth":"` + base64.StdEncoding.EncodeToString(b("u:p:with:colons")) + `"}}}`)},
			Options{Scheme: "oci", Registry: "reg.example:5000"}, Credentials{Username: "u", Password: "p:with:colons"}, "", 0},
		{"dockerconfigjson username and password", map[string][]byte{".dockerconfigjson": b(`{"auths":{"reg.example":{"username":"u","password":"p"}}}`), "ca.crt": b("PEM")},
			Options{Scheme: "oci", Registry: "REG.example"}, Credentials{Username: "u", Password: "p", CA: b("PEM")}, "", 0},
		{"dockerconfigjson docker hub alias", map[string][]byte{".dockerconfigjson": b(`{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"}}}`)},
			Options{Scheme: "oci", Registry: "registry-1.docker.io"}, Credentials{Username: "u", Password: "p"}, "", 0},
		{"file needs nothing", map[string][]byte{"identity": b("k")}, Options{Scheme: "file"}, Credentials{}, "", 0},
		{"ssh", map[string][]byte{"identity": b("k"), "known_hosts": b("h"), "username": b("ignored")}, Options{Scheme: "ssh"},
			Credentials{Identity: b("k"), KnownHosts: b("h")}, "", 0},

		{"both kinds", map[string][]byte{"username": b("u"), "password": b("p"), "bearerToken": b("t")}, https, Credentials{}, "keep one", outcome.Transient},
		{"username alone", map[string][]byte{"username": b("u")}, https, Credentials{}, "both username and password", outcome.Transient},
		{"password alone", map[string][]byte{"password": b("p")}, registry, Credentials{}, "both username and password", outcome.Transient},
		{"ca on http", map[string][]byte{"ca.crt": b("PEM")}, Options{Scheme: "http"}, Credentials{}, "not https", outcome.Transient},
		{"ssh keys on https", map[string][]byte{"identity": b("k"), "known_hosts": b("h")}, https, Credentials{},
			"identity and known_hosts, which are for ssh:// URLs; this URL is https://", outcome.Transient},
		{"dockerconfigjson for another host", map[string][]byte{".dockerconfigjson": b(`{"auths":{"evil.example":{"username":"u","password":"p"}}}`)},
			Options{Scheme: "oci", Registry: "reg.example"}, Credentials{}, "no entry for registry reg.example (entries: evil.example)", outcome.Transient},
		{"dockerconfigjson port differs", map[string][]byte{".dockerconfigjson": b(`{"auths":{"reg.example:5000":{"username":"u","password":"p"}}}`)},
			Options{Scheme: "oci", Registry: "reg.example"}, Credentials{}, "no entry for registry reg.example", outcome.Transient},
		{"dockerconfigjson not json", map[string][]byte{".dockerconfigjson": b(`nope`)}, Options{Scheme: "oci", Registry: "r"}, Credentials{}, "not a Docker config", outcome.Transient},
		{"dockerconfigjson and username", map[string][]byte{".dockerconfigjson": b(`{}`), "username": b("u"), "password": b("p")}, Options{Scheme: "oci", Registry: "r"}, Credentials{}, "keep one", outcome.Transient},
		{"dockerconfigjson on git", map[string][]byte{".dockerconfigjson": b(`{}`)}, https, Credentials{}, "only OCI registries", outcome.Transient},
		{"ssh without secret", nil, Options{Scheme: "ssh"}, Credentials{}, "need spec.secretRef", outcome.Stalled},
		{"ssh without known_hosts", map[string][]byte{"identity": b("k")}, Options{Scheme: "ssh"}, Credentials{}, "no known_hosts", outcome.Transient},
		{"ssh without identity", map[string][]byte{"known_hosts": b("h")}, Options{Scheme: "ssh"}, Credentials{}, "no identity", outcome.Transient},
		{"ssh password only", map[string][]byte{"username": b("u"), "password": b("p")}, Options{Scheme: "ssh"}, Credentials{}, "need the keys identity", outcome.Transient},
		{"nothing usable", map[string][]byte{"token": b("t")}, https, Credentials{}, "none of username and password, bearerToken or ca.crt (keys: token)", outcome.Transient},
		{"bearer where none is taken", map[string][]byte{"bearerToken": b("t")}, registry, Credentials{}, "none of username and password, or ca.crt (keys: bearerToken)", outcome.Transient},
		{"empty secret", map[string][]byte{}, https, Credentials{}, "secret has none", outcome.Transient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.data, tc.o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Fatal(diff)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			var f *outcome.Failure
			if !errors.As(err, &f) || f.Class != tc.class {
				t.Fatalf("error %v is not a %v failure", err, tc.class)
			}
			if tc.class == outcome.Transient && f.Reason != sourcev1.AuthenticationFailedReason {
				t.Fatalf("reason %q, want %s", f.Reason, sourcev1.AuthenticationFailedReason)
			}
		})
	}
}

func TestReadAndLoad(t *testing.T) {
	t.Parallel()
	reader := fake.NewClientBuilder().WithObjects(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds"}, Data: map[string][]byte{"username": b("u"), "password": b("p")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "empty"}},
	).Build()
	ctx := context.Background()

	c, err := Load(ctx, reader, "ns", &meta.LocalObjectReference{Name: "creds"}, Options{Scheme: "https"})
	if err != nil || c.Username != "u" || c.Password != "p" {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	if c, err := Load(ctx, reader, "ns", nil, Options{Scheme: "https"}); err != nil || !cmp.Equal(c, Credentials{}) {
		t.Fatalf("no ref: %+v, %v", c, err)
	}
	if data, err := Read(ctx, reader, "ns", "empty"); err != nil || data == nil || len(data) != 0 {
		t.Fatalf("an empty Secret: %v, %v; want an empty map, not nil", data, err)
	}
	_, err = Load(ctx, reader, "ns", &meta.LocalObjectReference{Name: "empty"}, Options{Scheme: "https"})
	if err == nil || !strings.HasPrefix(err.Error(), "secret empty: ") {
		t.Fatalf("an empty Secret: %v, want an error naming it", err)
	}
	_, err = Load(ctx, reader, "ns", &meta.LocalObjectReference{Name: "missing"}, Options{Scheme: "https"})
	var f *outcome.Failure
	if !errors.As(err, &f) || f.Class != outcome.Waiting || f.Reason != sourcev1.SecretNotFoundReason || !strings.Contains(err.Error(), "ns/missing") {
		t.Fatalf("a missing Secret: %v, want Waiting/%s", err, sourcev1.SecretNotFoundReason)
	}
}

func TestTransport(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake refused below is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	get := func(rt http.RoundTripper) error {
		resp, err := (&http.Client{Transport: rt}).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	rt, err := Credentials{}.Transport(nil)
	if err != nil || rt != http.DefaultTransport {
		t.Fatalf("without a CA: %v, %v; want http.DefaultTransport", rt, err)
	}
	if err := get(rt); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
	base := &http.Transport{}
	rt, err = Credentials{CA: ca}.Transport(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := get(rt); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	if base.TLSClientConfig != nil && base.TLSClientConfig.RootCAs != nil {
		t.Fatal("Transport changed the roots of its base")
	}

	_, err = Credentials{CA: b("not a PEM")}.Transport(nil)
	var f *outcome.Failure
	if !errors.As(err, &f) || f.Class != outcome.Transient || f.Reason != sourcev1.AuthenticationFailedReason {
		t.Fatalf("a CA without certificates: %v", err)
	}
	if _, err := (Credentials{CA: ca}).Transport(roundTripper(nil)); err == nil {
		t.Fatal("a CA over a transport that cannot take it was accepted")
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w: GET x: 401", ErrRefused), true},
		{fmt.Errorf("pulling: %w", &transport.Error{StatusCode: http.StatusUnauthorized}), true},
		{&transport.Error{StatusCode: http.StatusForbidden}, true},
		{&transport.Error{StatusCode: http.StatusNotFound}, false},
		{errors.New("401 Unauthorized"), false}, // words are not a refusal; status codes are
		{nil, false},
	} {
		if got := Refused(tc.err); got != tc.want {
			t.Errorf("Refused(%v) = %v", tc.err, got)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://user:secret@example.com/r.git": "https://example.com/r.git",
		"https://example.com/r.git":             "https://example.com/r.git",
		"ssh://git@example.com/r":               "ssh://example.com/r",
		"::not a url":                           "::not a url",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
