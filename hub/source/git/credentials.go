package git

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

// errUnsupportedURL marks a URL this controller cannot fetch from; only a spec change helps.
var errUnsupportedURL = errors.New("unsupported URL")

// parseURL checks the scheme: http, https, ssh and file are fetched.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnsupportedURL, err)
	}
	switch u.Scheme {
	case "http", "https", "file", "ssh":
		if u.Scheme == "ssh" && u.Hostname() == "" {
			return nil, fmt.Errorf("%w: ssh:// URL without a host", errUnsupportedURL)
		}
		return u, nil
	default:
		return nil, fmt.Errorf("%w: scheme %q; use https://, http://, ssh:// or file://", errUnsupportedURL, u.Scheme)
	}
}

// remoteFor builds the fetch settings for u from the Secret's data (nil: no Secret),
// parsed by hub/source/credentials as for every kind; what is left here is turning
// them into go-git's authentication.
func remoteFor(u *url.URL, data map[string][]byte) (remote, error) {
	rm := remote{URL: u.String()}
	c, err := credentials.Parse(data, credentials.Options{Scheme: u.Scheme, BearerToken: true})
	if err != nil {
		return rm, err
	}
	switch {
	case u.Scheme == "ssh":
		auth, err := sshAuth(u, c)
		if err != nil {
			return rm, outcome.Fail(outcome.Transient, sourcev1.AuthenticationFailedReason, err)
		}
		rm.Auth = auth
	case c.HasBasic():
		rm.Auth = &githttp.BasicAuth{Username: c.Username, Password: c.Password}
	case c.BearerToken != "":
		rm.Auth = &githttp.TokenAuth{Token: c.BearerToken}
	}
	rm.CABundle = c.CA
	return rm, nil
}

// authName names the kind of credentials for logs, never their values.
func authName(a transport.AuthMethod) string {
	if a == nil {
		return "none"
	}
	return a.Name()
}
