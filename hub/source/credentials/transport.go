package credentials

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

// ErrRefused marks a server's refusal of the credentials (HTTP 401 or 403) in
// errors made by the hub's own HTTP requests.
var ErrRefused = errors.New("the server refused the credentials")

// Transport returns base (http.DefaultTransport when nil) trusting c.CA besides the
// system's roots; base itself without a CA. A ca.crt without a certificate is a
// Secret that cannot be used, like any other.
func (c Credentials) Transport(base http.RoundTripper) (http.RoundTripper, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	if len(c.CA) == 0 {
		return base, nil
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("%s needs an *http.Transport, not %T", CACertKey, base)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(c.CA) {
		return nil, outcome.Fail(outcome.Transient, sourcev1.AuthenticationFailedReason, fmt.Errorf("%s holds no PEM certificate", CACertKey))
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.RootCAs = pool
	return t, nil
}

// Refused reports whether err says the server refused the credentials: ErrRefused
// from the hub's own requests, or a registry's 401 or 403.
func Refused(err error) bool {
	if errors.Is(err, ErrRefused) {
		return true
	}
	var te *transport.Error
	return errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden)
}

// Redact drops credentials from a URL so that it may appear in conditions, events
// and logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
