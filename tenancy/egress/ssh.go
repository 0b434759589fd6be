package egress

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/net/proxy"
)

// proxyScheme is a pseudo proxy scheme: go-git dials SSH through
// golang.org/x/net/proxy, which builds a dialer for a proxy URL by its scheme. A URL
// of this scheme is no proxy; it selects the restricted Dialer of the context it
// was made for, which go-git's SSH transport gives no other way to reach.
const proxyScheme = "flotilla-egress"

var (
	registerOnce sync.Once
	contexts     sync.Map // id → context.Context
	nextID       atomic.Uint64
)

// SSHProxyURL returns a proxy URL that makes go-git's SSH transport dial through a
// Dialer restricted as ctx is, and a func that forgets it; call it when the Git
// operation is over. An unrestricted ctx gets "" (dial as go-git would).
func SSHProxyURL(ctx context.Context) (string, func()) {
	if _, ok := PolicyFrom(ctx); !ok {
		return "", func() {}
	}
	registerOnce.Do(func() {
		proxy.RegisterDialerType(proxyScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
			c, ok := contexts.Load(u.Host)
			if !ok {
				return nil, fmt.Errorf("egress: no restricted dial is registered as %q", u.Host)
			}
			return restrictedDialer{ctx: c.(context.Context)}, nil
		})
	})
	id := strconv.FormatUint(nextID.Add(1), 10)
	contexts.Store(id, ctx)
	return proxyScheme + "://" + id, func() { contexts.Delete(id) }
}

// restrictedDialer dials under the restriction of ctx, cancelled by either context.
type restrictedDialer struct{ ctx context.Context }

func (d restrictedDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d restrictedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	merged, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel)
	defer stop()
	merged = context.WithValue(merged, ctxKey{}, d.ctx.Value(ctxKey{}))
	return NewDialer().DialContext(merged, network, address)
}
