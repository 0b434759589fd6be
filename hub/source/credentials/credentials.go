package credentials

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

// Keys of a credentials Secret.
const (
	UsernameKey    = "username"
	PasswordKey    = "password"
	BearerTokenKey = "bearerToken"
	CACertKey      = "ca.crt"
	IdentityKey    = "identity"
	KnownHostsKey  = "known_hosts"
)

// ErrNoSSHSecret: an ssh:// URL needs a key and the host's key, and the hub has no
// defaults (no ~/.ssh), so only a spec change helps.
var ErrNoSSHSecret = errors.New("ssh:// URLs need spec.secretRef naming a Secret with identity (private key) and known_hosts")

// Credentials is what a Secret holds to reach one server. The zero value is no
// Secret: anonymous, the system's roots.
type Credentials struct {
	Username, Password string
	BearerToken        string
	// CA is ca.crt: PEM certificates trusted besides the system's roots.
	CA []byte
	// Identity (a private key) and KnownHosts are set for ssh:// URLs only.
	Identity, KnownHosts []byte
}

// HasBasic reports whether the Secret gave a username and password.
func (c Credentials) HasBasic() bool { return c.Username != "" || c.Password != "" }

// Options says what the server in question takes.
type Options struct {
	// Scheme of the source URL: "ssh" takes identity and known_hosts only, "file"
	// needs nothing, "http" refuses ca.crt (there is no TLS to trust it for).
	Scheme string
	// BearerToken: the server takes a bearer token instead of username and password.
	BearerToken bool
	// Registry is the host[:port] of an OCI registry: a .dockerconfigjson entry is
	// then read, and only its entry for this host is used. Empty: the entry is refused.
	Registry string
}

// Parse reads a Secret's data (nil: no Secret) for a server as o describes. It
// refuses rather than ignores what it cannot use, so that a fetch never goes out
// without the credentials the user meant it to have. A Secret that cannot be used is
// Transient with reason AuthenticationFailed, as when the server refuses it: either
// way someone fixes the Secret, which the hub does not watch. An ssh:// URL without
// a Secret is Stalled, with the kind's reason: only the spec can name one.
func Parse(data map[string][]byte, o Options) (Credentials, error) {
	c, err := parse(data, o)
	if errors.Is(err, ErrNoSSHSecret) {
		return c, outcome.Fail(outcome.Stalled, "", err)
	}
	return c, outcome.Fail(outcome.Transient, sourcev1.AuthenticationFailedReason, err)
}

func parse(data map[string][]byte, o Options) (Credentials, error) {
	var c Credentials
	switch {
	case data == nil && o.Scheme == "ssh":
		return c, ErrNoSSHSecret
	case data == nil, o.Scheme == "file": // the local file system needs no credentials
		return c, nil
	case o.Scheme == "ssh":
		return parseSSH(data)
	}
	user, hasUser := data[UsernameKey]
	pass, hasPass := data[PasswordKey]
	if dc, ok := data[DockerConfigJSONKey]; ok {
		switch {
		case o.Registry == "":
			return c, fmt.Errorf("secret has %s, which only OCI registries take", DockerConfigJSONKey)
		case hasUser || hasPass:
			return c, fmt.Errorf("secret has both %s and username/password; keep one", DockerConfigJSONKey)
		}
		u, p, err := dockerConfigFor(dc, o.Registry)
		if err != nil {
			return c, err
		}
		user, pass, hasUser, hasPass = []byte(u), []byte(p), true, true
	}
	token, hasToken := data[BearerTokenKey]
	hasToken = hasToken && o.BearerToken
	ca, hasCA := data[CACertKey]
	switch {
	case (hasUser || hasPass) && hasToken:
		return c, errors.New("secret has both username/password and bearerToken; keep one")
	case hasUser != hasPass:
		return c, errors.New("secret needs both username and password")
	case hasCA && o.Scheme == "http":
		return c, fmt.Errorf("secret has %s but the URL is not https://", CACertKey)
	case !hasUser && !hasToken && !hasCA:
		return c, nothingUsable(data, o)
	}
	c.Username, c.Password = string(user), string(pass)
	c.BearerToken = strings.TrimSpace(string(token))
	c.CA = ca
	return c, nil
}

func parseSSH(data map[string][]byte) (Credentials, error) {
	identity, hasIdentity := data[IdentityKey]
	knownHosts, hasKnownHosts := data[KnownHostsKey]
	switch {
	case !hasIdentity && !hasKnownHosts:
		return Credentials{}, fmt.Errorf("ssh:// URLs need the keys %s (private key) and %s in the secret", IdentityKey, KnownHostsKey)
	case !hasIdentity:
		return Credentials{}, fmt.Errorf("secret has %s but no %s (private key)", KnownHostsKey, IdentityKey)
	case !hasKnownHosts:
		return Credentials{}, fmt.Errorf("secret has %s but no %s: the hub does not connect to a host whose key it cannot check", IdentityKey, KnownHostsKey)
	}
	return Credentials{Identity: identity, KnownHosts: knownHosts}, nil
}

// nothingUsable says what the Secret holds instead, without any value.
func nothingUsable(data map[string][]byte, o Options) error {
	var ssh []string
	for _, k := range []string{IdentityKey, KnownHostsKey} {
		if _, ok := data[k]; ok {
			ssh = append(ssh, k)
		}
	}
	if len(ssh) > 0 {
		return fmt.Errorf("secret has %s, which are for ssh:// URLs; this URL is %s://", strings.Join(ssh, " and "), o.Scheme)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "username and password, or " + CACertKey
	if o.Registry != "" {
		want = "username and password, " + DockerConfigJSONKey + " or " + CACertKey
	}
	if o.BearerToken {
		want = "username and password, " + BearerTokenKey + " or " + CACertKey
	}
	return fmt.Errorf("secret has none of %s (keys: %s)", want, strings.Join(keys, ", "))
}
