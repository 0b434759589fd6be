package git

import (
	"context"
	"net/http"
	"net/url"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// go-git picks its HTTP client by URL scheme from one process-wide table, not per
// clone; the one installed here dials through egress.Transport, which restricts each
// request as its context says (the context of the clone) and keeps no idle
// connection, so that no connection the platform opened serves a tenant.
func init() {
	c := githttp.NewClient(&http.Client{Transport: egress.Transport(nil)})
	client.InstallProtocol("http", c)
	client.InstallProtocol("https", c)
}

// restrictRemote holds a tenant's fetch (ctx restricted by egress.Restrict) to the
// egress policy where go-git's HTTP table does not: it refuses file:// URLs, which
// read the hub's own disk, and makes SSH dial through the restricted dialer. The
// returned func releases what it set up; call it when the fetch is over.
func restrictRemote(ctx context.Context, rm *remote) (func(), error) {
	if _, ok := egress.PolicyFrom(ctx); !ok {
		return func() {}, nil
	}
	u, err := url.Parse(rm.URL)
	if err != nil {
		return func() {}, nil // parseURL has refused it already
	}
	switch u.Scheme {
	case "file":
		return func() {}, egress.RefuseLocal(ctx, rm.URL)
	case "ssh":
		proxyURL, release := egress.SSHProxyURL(ctx)
		rm.Proxy = transport.ProxyOptions{URL: proxyURL}
		return release, nil
	}
	return func() {}, nil
}
