package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

type ctxKey struct{}

// restriction is what Restrict puts on a context: the policy, and the first dial it
// refused, so that a caller can tell a refusal from other errors however deep a
// library wrapped it.
type restriction struct {
	policy *Policy
	mu     sync.Mutex
	first  *Refusal
}

func (r *restriction) record(ref *Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first == nil {
		c := *ref
		r.first = &c
	}
}

// Restrict returns a context whose dials through this package's hooks must satisfy
// p (nil: the default rules). The hub restricts the context of every fetch and send
// it makes for an object in a tenant's namespace.
func Restrict(ctx context.Context, p *Policy) context.Context {
	if p == nil {
		p = &Policy{}
	}
	return context.WithValue(ctx, ctxKey{}, &restriction{policy: p})
}

// RefuseLocal records and returns the refusal of a file:// URL (or any other way to
// the hub's own disk) under a restricted ctx; nil when ctx is not restricted.
func RefuseLocal(ctx context.Context, rawURL string) error {
	r, ok := ctx.Value(ctxKey{}).(*restriction)
	if !ok {
		return nil
	}
	ref := &Refusal{Host: rawURL, Rule: LocalFilesRule}
	r.record(ref)
	return ref
}

// PolicyFrom returns the policy ctx is restricted by; false when it is not.
func PolicyFrom(ctx context.Context) (*Policy, bool) {
	r, ok := ctx.Value(ctxKey{}).(*restriction)
	if !ok {
		return nil, false
	}
	return r.policy, true
}

// Refused returns the first dial refused under ctx's restriction, nil when none was.
func Refused(ctx context.Context) *Refusal {
	r, ok := ctx.Value(ctxKey{}).(*restriction)
	if !ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

// Control is a net.Dialer ControlContext: it runs after the name is resolved and
// before the connection is made, on the address actually dialed, and refuses it when
// ctx is restricted and the policy does not allow it. An unrestricted ctx dials
// anywhere.
func Control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	r, ok := ctx.Value(ctxKey{}).(*restriction)
	if !ok {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		ref := &Refusal{Host: address, Rule: "unparsable address"}
		r.record(ref)
		return ref
	}
	if ref := r.policy.Check(ap.Addr()); ref != nil {
		r.record(ref)
		return ref
	}
	return nil
}

// Dialer dials with Control: use its DialContext wherever the hub dials for an
// object (an http.Transport's DialContext, an SSH connection).
type Dialer struct {
	net.Dialer
}

// NewDialer returns a Dialer with the timeouts of http.DefaultTransport's.
func NewDialer() *Dialer {
	return &Dialer{Dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}}
}

// DialContext dials address, refused as Control says; a refusal is returned as the
// *Refusal itself, naming the host the caller asked for.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nd := d.Dialer
	nd.Control = nil
	nd.ControlContext = Control
	conn, err := nd.DialContext(ctx, network, address)
	var ref *Refusal
	if errors.As(err, &ref) {
		out := *ref
		out.Host = address
		if r, ok := ctx.Value(ctxKey{}).(*restriction); ok {
			r.mu.Lock()
			if r.first != nil && r.first.Host == "" {
				r.first.Host = address
			}
			r.mu.Unlock()
		}
		return nil, &out
	}
	return conn, err
}

// Dial is DialContext without a context: never restricted.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// Transport returns a copy of base (http.DefaultTransport when nil) that dials
// through a Dialer, so that each request is restricted as its context says. It keeps
// no idle connection: a connection the platform's request opened must not serve a
// tenant's, nor one dialed under one policy a request under another, and every
// request dialing afresh is what makes each one checked.
func Transport(base *http.Transport) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	t.DialContext = NewDialer().DialContext
	t.DialTLSContext = nil
	t.DisableKeepAlives = true
	return t
}

// defaultTransport is Transport(nil): it keeps no idle connections, so one serves
// every caller.
var defaultTransport = Transport(nil)

// Wrap returns rt dialing through the egress hook: the shared Transport(nil) when rt
// is nil, Transport(rt) when it is an *http.Transport, and rt itself otherwise (a
// RoundTripper of another kind must dial through a Dialer on its own).
func Wrap(rt http.RoundTripper) http.RoundTripper {
	switch t := rt.(type) {
	case nil:
		return defaultTransport
	case *http.Transport:
		return Transport(t)
	default:
		return rt
	}
}
