package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// listener counts the connections made to a loopback port.
func listener(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	return l.Addr().String(), accepted
}

func TestDialRefusesNameResolvingToLoopback(t *testing.T) {
	addr, accepted := listener(t)
	_, port, _ := net.SplitHostPort(addr)
	target := net.JoinHostPort("localhost", port) // a name: resolved by the dialer, not by us

	ctx := Restrict(context.Background(), nil)
	conn, err := NewDialer().DialContext(ctx, "tcp", target)
	if err == nil {
		_ = conn.Close()
		t.Fatal("dial to localhost succeeded under the default policy")
	}
	var ref *Refusal
	if !errors.As(err, &ref) {
		t.Fatalf("error is not a Refusal: %v", err)
	}
	if ref.Host != target || ref.Rule != "loopback" || !ref.Addr.IsLoopback() {
		t.Errorf("refusal = %+v, want host %s, rule loopback, a loopback address", ref, target)
	}
	if got := Refused(ctx); got == nil || got.Host != target {
		t.Errorf("Refused(ctx) = %+v, want the refusal of %s", got, target)
	}
	time.Sleep(100 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Errorf("the listener accepted %d connections; the refusal must come before connecting", n)
	}
}

func TestDialAllowedNetworkAndUnrestricted(t *testing.T) {
	addr, accepted := listener(t)
	_, port, _ := net.SplitHostPort(addr)
	target := net.JoinHostPort("localhost", port)

	// localhost may resolve to ::1 first, where nothing listens: allow both.
	p := NewPolicy(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	ctx := Restrict(context.Background(), p)
	conn, err := NewDialer().DialContext(ctx, "tcp", target)
	if err != nil {
		t.Fatalf("dial under a policy allowing loopback: %v", err)
	}
	_ = conn.Close()
	if Refused(ctx) != nil {
		t.Errorf("Refused = %v after an allowed dial", Refused(ctx))
	}

	// No restriction on the context: the platform dials anywhere.
	conn, err = NewDialer().DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("unrestricted dial: %v", err)
	}
	_ = conn.Close()
	waitFor(t, func() bool { return accepted.Load() == 2 })
}

func TestTransportChecksEveryRequest(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "secret")
	}))
	defer srv.Close()
	client := &http.Client{Transport: Transport(nil)}
	get := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return err
	}
	// The platform's request first: its connection must not be reused for the tenant's.
	if err := get(context.Background()); err != nil {
		t.Fatalf("platform request: %v", err)
	}
	ctx := Restrict(context.Background(), nil)
	err := get(ctx)
	var ref *Refusal
	if !errors.As(err, &ref) || ref.Rule != "loopback" {
		t.Fatalf("tenant request: err = %v, want a loopback Refusal", err)
	}
	if !strings.Contains(err.Error(), srv.Listener.Addr().String()) {
		t.Errorf("message %q does not name the host", err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want only the platform's", n)
	}
	allowed := Restrict(context.Background(), NewPolicy(netip.MustParsePrefix("127.0.0.1/32")))
	if err := get(allowed); err != nil {
		t.Errorf("request under a policy allowing 127.0.0.1: %v", err)
	}
}

func TestSSHProxyURL(t *testing.T) {
	addr, accepted := listener(t)
	if u, release := SSHProxyURL(context.Background()); u != "" {
		release()
		t.Fatalf("an unrestricted context got proxy URL %q", u)
	}
	ctx := Restrict(context.Background(), nil)
	raw, release := SSHProxyURL(ctx)
	u, _ := url.Parse(raw)
	d, err := proxy.FromURL(u, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.(proxy.ContextDialer).DialContext(context.Background(), "tcp", addr)
	var ref *Refusal
	if !errors.As(err, &ref) || ref.Rule != "loopback" {
		t.Fatalf("err = %v, want a loopback Refusal", err)
	}
	if Refused(ctx) == nil {
		t.Error("the refusal was not recorded on the restricted context")
	}
	release()
	if _, err := proxy.FromURL(u, proxy.Direct); err == nil {
		t.Error("a released proxy URL still resolves to a dialer")
	}
	if accepted.Load() != 0 {
		t.Error("the listener accepted a connection")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRefuseLocal(t *testing.T) {
	if err := RefuseLocal(context.Background(), "file:///srv/git/repo"); err != nil {
		t.Errorf("unrestricted: %v, want nil", err)
	}
	ctx := Restrict(context.Background(), NewPolicy(netip.MustParsePrefix("0.0.0.0/0")))
	err := RefuseLocal(ctx, "file:///srv/git/repo")
	want := "egress to file:///srv/git/repo is not allowed for a tenant: a file:// URL reads the hub's own disk"
	if err == nil || err.Error() != want || Refused(ctx) == nil {
		t.Errorf("restricted: %v, want %q recorded", err, want)
	}
}

// BenchmarkTransport measures what the restricted transport costs per request
// against a local server: a fresh connection and the Control check each time,
// against http.DefaultTransport's kept-alive connection.
func BenchmarkTransport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer srv.Close()
	allowed := Restrict(context.Background(), NewPolicy(netip.MustParsePrefix("127.0.0.0/8")))
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
		ctx  context.Context
	}{
		{"default-keepalive", http.DefaultTransport, context.Background()},
		{"egress-unrestricted", Transport(nil), context.Background()},
		{"egress-restricted-allowed", Transport(nil), allowed},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := &http.Client{Transport: c.rt}
			for b.Loop() {
				req, _ := http.NewRequestWithContext(c.ctx, http.MethodGet, srv.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
}
