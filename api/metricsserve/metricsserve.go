// Package metricsserve is how the hub and the agent serve their Prometheus metrics:
// HTTPS, each request authenticated and authorised by a Kubernetes API server, or
// plain HTTP for local development.
package metricsserve

import (
	"net/http"

	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Options are the metrics server's options for addr: HTTPS with a self-signed
// certificate (or certDir's tls.crt and tls.key), each request authenticated
// (TokenReview) and authorised (SubjectAccessReview, get on the non-resource URL
// /metrics) by the API server the manager talks to; plain HTTP for everyone when
// insecure (local development and tests). "0" turns metrics off.
func Options(addr string, insecure bool, certDir string) metricsserver.Options {
	if addr == "" {
		addr = "0"
	}
	o := metricsserver.Options{BindAddress: addr}
	if insecure || addr == "0" {
		return o
	}
	o.SecureServing = true
	o.FilterProvider = func(cfg *rest.Config, _ *http.Client) (metricsserver.Filter, error) {
		return authFilter(cfg)
	}
	o.CertDir = certDir
	return o
}

// OptionsAgainst is Options with requests authorised by another API server than
// the manager's: the agent's manager talks to the hub, but its metrics are scraped
// on the spoke and authorised there.
func OptionsAgainst(cfg *rest.Config, addr string, insecure bool, certDir string) metricsserver.Options {
	o := Options(addr, insecure, certDir)
	if o.FilterProvider != nil {
		o.FilterProvider = func(_ *rest.Config, _ *http.Client) (metricsserver.Filter, error) {
			return authFilter(cfg)
		}
	}
	return o
}
