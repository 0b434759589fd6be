package agent

import (
	"net/http"

	"k8s.io/client-go/rest"
)

// artifactTransport sends the agent's hub bearer token with artifact downloads, since
// the hub's artifact server serves a cluster only what is assigned to it. It is nil
// (the default transport) for a credential without a token, e.g. a client certificate.
func artifactTransport(hub *rest.Config) http.RoundTripper {
	if hub == nil || (hub.BearerToken == "" && hub.BearerTokenFile == "") {
		return nil
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	// Only the token: the hub's API server identity settings (impersonation, user
	// agent) mean nothing to the artifact server.
	rt, err := rest.HTTPWrappersForConfig(&rest.Config{BearerToken: hub.BearerToken, BearerTokenFile: hub.BearerTokenFile}, base)
	if err != nil {
		return nil
	}
	return rt
}
