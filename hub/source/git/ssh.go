package git

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// defaultSSHUser is the user when the URL names none, as on every Git hosting service.
const defaultSSHUser = "git"

// sshRemote builds public-key authentication that only talks to hosts whose keys the
// Secret's known_hosts lists. There is deliberately no way to skip the host check:
// a hub that trusts any host hands its deploy key and the fleet to whoever answers.
func sshRemote(u *url.URL, data map[string][]byte) (remote, error) {
	rm := remote{URL: u.String()}
	identity, hasIdentity := data[keyIdentity]
	knownHosts, hasKnownHosts := data[keyKnownHosts]
	switch {
	case !hasIdentity && !hasKnownHosts:
		return rm, fmt.Errorf("ssh:// URLs need the keys %s (private key) and %s in the secret", keyIdentity, keyKnownHosts)
	case !hasIdentity:
		return rm, fmt.Errorf("secret has %s but no %s (private key)", keyKnownHosts, keyIdentity)
	case !hasKnownHosts:
		return rm, fmt.Errorf("secret has %s but no %s: the hub does not connect to a host whose key it cannot check", keyIdentity, keyKnownHosts)
	}
	user := defaultSSHUser
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	auth, err := gitssh.NewPublicKeys(user, identity, "")
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return rm, fmt.Errorf("%s is protected by a passphrase; give a key without one", keyIdentity)
		}
		return rm, fmt.Errorf("parsing %s: %w", keyIdentity, err)
	}
	hostPort := sshHostPort(u)
	check, algorithms, err := knownHostsCheck(knownHosts, hostPort)
	if err != nil {
		return rm, err
	}
	auth.HostKeyCallback = check
	auth.HostKeyAlgorithms = algorithms
	rm.Auth = auth
	return rm, nil
}

// sshHostPort is the address go-git dials and looks up in known_hosts.
func sshHostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "22"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// knownHostsCheck returns a host key callback over the given known_hosts content and
// the key algorithms to ask the server for, so that a server with several host keys
// offers one known_hosts can check.
func knownHostsCheck(content []byte, hostPort string) (ssh.HostKeyCallback, []string, error) {
	if strings.TrimSpace(string(content)) == "" {
		return nil, nil, fmt.Errorf("%s is empty", keyKnownHosts)
	}
	// The knownhosts packages read files only; the file is read once, here.
	f, err := os.CreateTemp("", "flotilla-known-hosts-")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(content)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, nil, werr
	}
	db, err := gitssh.NewKnownHostsDb(f.Name())
	if err != nil {
		return nil, nil, fmt.Errorf("parsing %s: %w", keyKnownHosts, err)
	}
	inner := db.HostKeyCallback()
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if err := inner(hostname, remote, key); err != nil {
			// The library's "knownhosts: key is unknown" does not tell the user what to fix.
			return fmt.Errorf("refusing to connect: host key %s %s of %s is not trusted by the secret's %s (%v)",
				key.Type(), ssh.FingerprintSHA256(key), hostname, keyKnownHosts, err)
		}
		return nil
	}
	return check, db.HostKeyAlgorithms(hostPort), nil
}

// isHostKeyError: the server's key is not in known_hosts.
func isHostKeyError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "refusing to connect: host key")
}

// isAuthError: the server refused the credentials.
func isAuthError(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "authentication required") ||
		strings.Contains(msg, "authorization failed")
}
