package git

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// Secret keys read from spec.secretRef.
const (
	keyUsername    = "username"
	keyPassword    = "password"
	keyBearerToken = "bearerToken"
	keyCACert      = "ca.crt"
	keyIdentity    = "identity"
	keyKnownHosts  = "known_hosts"
)

// errNoSSHSecret: an ssh:// URL needs a key and the host's key; there are no defaults
// on the hub (no ~/.ssh), so only a spec change helps.
var errNoSSHSecret = errors.New("ssh:// URLs need spec.secretRef naming a Secret with identity (private key) and known_hosts")

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

// remoteFor builds the fetch settings for u from the Secret's data (nil: no Secret).
// It refuses rather than ignores what it cannot use, so that a fetch never goes out
// without the credentials the user meant it to have.
func remoteFor(u *url.URL, data map[string][]byte) (remote, error) {
	rm := remote{URL: u.String()}
	if data == nil {
		if u.Scheme == "ssh" {
			return rm, errNoSSHSecret
		}
		return rm, nil
	}
	if u.Scheme == "file" {
		return rm, nil // the local file system needs no credentials
	}
	if u.Scheme == "ssh" {
		return sshRemote(u, data)
	}
	user, hasUser := data[keyUsername]
	pass, hasPass := data[keyPassword]
	token, hasToken := data[keyBearerToken]
	switch {
	case (hasUser || hasPass) && hasToken:
		return rm, errors.New("secret has both username/password and bearerToken; keep one")
	case hasUser != hasPass:
		return rm, errors.New("secret needs both username and password")
	case hasUser:
		rm.Auth = &githttp.BasicAuth{Username: string(user), Password: string(pass)}
	case hasToken:
		rm.Auth = &githttp.TokenAuth{Token: strings.TrimSpace(string(token))}
	}
	if ca, ok := data[keyCACert]; ok {
		if u.Scheme != "https" {
			return rm, fmt.Errorf("secret has %s but the URL is not https://", keyCACert)
		}
		rm.CABundle = ca
	}
	if rm.Auth == nil && rm.CABundle == nil {
		var ssh []string
		for _, k := range []string{keyIdentity, keyKnownHosts} {
			if _, ok := data[k]; ok {
				ssh = append(ssh, k)
			}
		}
		if len(ssh) > 0 {
			return rm, fmt.Errorf("secret has %s, which are for ssh:// URLs; this URL is %s://", strings.Join(ssh, " and "), u.Scheme)
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return rm, fmt.Errorf("secret has none of username and password, bearerToken or ca.crt (keys: %s)", strings.Join(keys, ", "))
	}
	return rm, nil
}

// authName names the kind of credentials for logs, never their values.
func authName(a transport.AuthMethod) string {
	if a == nil {
		return "none"
	}
	return a.Name()
}
