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

	"github.com/flotilla-dev/flotilla/hub/source/credentials"
)

// defaultSSHUser is the user when the URL names none, as on every Git hosting service.
const defaultSSHUser = "git"

// sshAuth builds public-key authentication that only talks to hosts whose keys the
// Secret's known_hosts lists. There is deliberately no way to skip the host check:
// a hub that trusts any host hands its deploy key and the fleet to whoever answers.
func sshAuth(u *url.URL, c credentials.Credentials) (*gitssh.PublicKeys, error) {
	user := defaultSSHUser
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	auth, err := gitssh.NewPublicKeys(user, c.Identity, "")
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("%s is protected by a passphrase; give a key without one", credentials.IdentityKey)
		}
		return nil, fmt.Errorf("parsing %s: %w", credentials.IdentityKey, err)
	}
	check, algorithms, err := knownHostsCheck(c.KnownHosts, sshHostPort(u))
	if err != nil {
		return nil, err
	}
	auth.HostKeyCallback = check
	auth.HostKeyAlgorithms = algorithms
	return auth, nil
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
		return nil, nil, fmt.Errorf("%s is empty", credentials.KnownHostsKey)
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
		return nil, nil, fmt.Errorf("parsing %s: %w", credentials.KnownHostsKey, err)
	}
	inner := db.HostKeyCallback()
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if err := inner(hostname, remote, key); err != nil {
			// The library's "knownhosts: key is unknown" does not tell the user what to fix.
			return fmt.Errorf("refusing to connect: host key %s %s of %s is not trusted by the secret's %s (%v)",
				key.Type(), ssh.FingerprintSHA256(key), hostname, credentials.KnownHostsKey, err)
		}
		return nil
	}
	return check, db.HostKeyAlgorithms(hostPort), nil
}
