package sshgit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Server serves the bare repositories below Root over SSH.
type Server struct {
	t        testing.TB
	root     string
	ln       net.Listener
	hostKey  ssh.Signer
	mu       sync.Mutex
	clients  []ssh.PublicKey
	wg       sync.WaitGroup
	closed   chan struct{}
	gitBin   string
	conns    map[net.Conn]struct{}
	connsMux sync.Mutex
}

// New starts a server on 127.0.0.1 for the repositories below root (a
// gitserver.Server's Root, for instance); it stops when the test ends.
func New(t testing.TB, root string) *Server {
	t.Helper()
	gitBin, err := exec.LookPath("git-upload-pack")
	if err != nil {
		// Debian keeps git-upload-pack on PATH; elsewhere it lives in git's exec path.
		gitBin, err = exec.LookPath("git")
		if err != nil {
			t.Fatalf("sshgit needs git: %v", err)
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, root: root, ln: ln, hostKey: hostKey, closed: make(chan struct{}), gitBin: gitBin, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	close(s.closed)
	s.ln.Close()
	s.connsMux.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.connsMux.Unlock()
	s.wg.Wait()
}

// Authorize lets the holder of key's private half in.
func (s *Server) Authorize(key ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = append(s.clients, key)
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the ssh:// address of the repository name below Root (as user git).
func (s *Server) URL(name string) string {
	if !strings.HasSuffix(name, ".git") {
		name += ".git"
	}
	return "ssh://git@" + s.Addr() + "/" + name
}

// KnownHosts is a known_hosts line that trusts this server's host key at its address.
func (s *Server) KnownHosts() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.hostKey.PublicKey()) + "\n"
}

// HostPublicKey is the server's host key.
func (s *Server) HostPublicKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// NewClientKey generates an ed25519 key pair and returns the private key as an
// OpenSSH PEM (what a Secret's identity holds) and the public key.
func NewClientKey(t testing.TB) ([]byte, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), sshPub
}

func (s *Server) config() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, k := range s.clients {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("unknown public key")
		},
	}
	cfg.AddHostKey(s.hostKey)
	return cfg
}

func (s *Server) accept() {
	defer s.wg.Done()
	cfg := s.config()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.connsMux.Lock()
		s.conns[c] = struct{}{}
		s.connsMux.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.connsMux.Lock()
				delete(s.conns, c)
				s.connsMux.Unlock()
				c.Close()
			}()
			s.serveConn(c, cfg)
		}()
	}
}

func (s *Server) logf(format string, args ...any) {
	select {
	case <-s.closed:
		// The test may have ended; logging then panics.
	default:
		s.t.Logf("sshgit: "+format, args...)
	}
}

func (s *Server) serveConn(c net.Conn, cfg *ssh.ServerConfig) {
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		s.logf("handshake: %v", err)
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveSession(ch, chReqs)
		}()
	}
}

// serveSession answers the session's exec request, the only one git makes.
func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "env":
			req.Reply(true, nil) // git sends GIT_PROTOCOL; protocol v0 is fine
		case "exec":
			cmdline, ok := parseString(req.Payload)
			if !ok {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			code := s.exec(ch, cmdline)
			status := make([]byte, 4)
			binary.BigEndian.PutUint32(status, uint32(code))
			ch.SendRequest("exit-status", false, status)
			return
		default:
			req.Reply(false, nil)
		}
	}
}

// exec runs git-upload-pack on the named repository; anything else is refused.
func (s *Server) exec(ch ssh.Channel, cmdline string) int {
	service, arg, ok := strings.Cut(cmdline, " ")
	if !ok || service != "git-upload-pack" {
		fmt.Fprintf(ch.Stderr(), "sshgit: only git-upload-pack is served, not %q\n", cmdline)
		return 1
	}
	repo := strings.Trim(arg, "'")
	p := filepath.Join(s.root, filepath.FromSlash(filepath.Clean("/"+repo)))
	if _, err := os.Stat(p); err != nil {
		fmt.Fprintf(ch.Stderr(), "sshgit: no repository %s\n", repo)
		return 1
	}
	var cmd *exec.Cmd
	if filepath.Base(s.gitBin) == "git" {
		cmd = exec.Command(s.gitBin, "upload-pack", p)
	} else {
		cmd = exec.Command(s.gitBin, p)
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.root, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull}
	cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
	// A pipe, not cmd.Stdin = ch: Wait would otherwise block on a client that waits
	// for the exit status before it closes its side.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		s.logf("stdin: %v", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		s.logf("git-upload-pack: %v", err)
		return 1
	}
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		s.logf("git-upload-pack: %v", err)
		return 1
	}
	return 0
}

// parseString reads an SSH wire string (uint32 length, bytes).
func parseString(b []byte) (string, bool) {
	if len(b) < 4 {
		return "", false
	}
	n := binary.BigEndian.Uint32(b)
	if uint32(len(b)-4) < n {
		return "", false
	}
	return string(b[4 : 4+n]), true
}
