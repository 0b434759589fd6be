package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"

	"k8s.io/client-go/rest"
)

// artifactTransport is the transport of artifact downloads: it trusts caPEM (the hub
// artifact server's CA) when set, and sends the agent's hub bearer token, since the
// hub's artifact server serves a cluster only what is assigned to it. It is nil (the
// default transport) when there is neither a CA nor a token (e.g. a client certificate).
func artifactTransport(hub *rest.Config, caPEM []byte) (http.RoundTripper, error) {
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
	return rest.HTTPWrappersForConfig(&rest.Config{BearerToken: hub.BearerToken, BearerTokenFile: hub.BearerTokenFile}, base)
}
