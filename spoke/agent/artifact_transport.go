package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"

	"k8s.io/client-go/rest"

	"github.com/flotilla-dev/flotilla/spoke/fetch"
)

// artifactTransport is the transport of artifact downloads: it trusts caPEM (the hub
// artifact server's CA) when set, and sends the agent's hub bearer token, since the
// hub's artifact server serves a cluster only what is assigned to it, but only over
// HTTPS and only below artifactURL when that is set. It is nil (the default
// transport) when there is neither a CA nor a token (e.g. a client certificate).
func artifactTransport(hub *rest.Config, caPEM []byte, artifactURL string) (http.RoundTripper, error) {
	token := hub != nil && (hub.BearerToken != "" || hub.BearerTokenFile != "")
	if !token && len(caPEM) == 0 {
		return nil, nil
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the artifact server CA is not PEM")
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if !token {
		return base, nil
	}
	// Only the token: the hub's API server identity settings (impersonation, user
	// agent) mean nothing to the artifact server.
	withToken, err := rest.HTTPWrappersForConfig(&rest.Config{BearerToken: hub.BearerToken, BearerTokenFile: hub.BearerTokenFile}, base)
	if err != nil {
		return nil, err
	}
	return &credentialScope{base: base, withToken: withToken, artifactURL: artifactURL}, nil
}

// credentialScope adds the credential only to requests for the registered artifact
// server over HTTPS; anything else goes out without it. spoke/fetch refuses such
// URLs before asking; this is the second wall.
type credentialScope struct {
	base, withToken http.RoundTripper
	artifactURL     string
}

func (c *credentialScope) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "https" && fetch.AllowedURL(c.artifactURL, req.URL.String()) == nil {
		return c.withToken.RoundTrip(req)
	}
	return c.base.RoundTrip(req)
}
