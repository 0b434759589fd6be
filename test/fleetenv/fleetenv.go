package fleetenv

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/tenancy"
	"github.com/flotilla-dev/flotilla/test/env"
)

// Loopback is the network test hubs let tenants reach (--tenant-egress-allow).
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Option adjusts a fleet's options.
type Option func(*devenv.Options)

// WithClusterLabels sets the labels of the i-th spoke's Cluster (i counts from 1).
func WithClusterLabels(labels func(i int) map[string]string) Option {
	return func(o *devenv.Options) { o.ClusterLabels = labels }
}

// WithHeartbeat sets the agents' heartbeat interval and the hub's grace period, so
// that a stopped agent makes its Cluster stale quickly.
func WithHeartbeat(interval, grace time.Duration) Option {
	return func(o *devenv.Options) { o.HeartbeatInterval, o.HeartbeatGrace = interval, grace }
}

// WithoutAgents registers the Clusters but starts no agent; Fleet.StartAgent does.
func WithoutAgents() Option {
	return func(o *devenv.Options) { o.NoAgents = true }
}

// WithDir keeps the kubeconfigs and state in dir instead of a temporary folder.
func WithDir(dir string) Option {
	return func(o *devenv.Options) { o.Dir = dir }
}

// With applies any other change to the options.
func With(change func(*devenv.Options)) Option { return change }

// Fleet is a running local fleet with test conveniences.
type Fleet struct {
	*devenv.Fleet
	t testing.TB
}

// StartFleet starts a hub and spokes spoke-1…spoke-N with an agent each, waits until
// every Cluster is Ready, and stops it all when the test ends.
func StartFleet(t testing.TB, spokes int, opts ...Option) *Fleet {
	t.Helper()
	o := devenv.Options{
		Spokes:    spokes,
		BinaryDir: env.Binaries(t),
		Dir:       t.TempDir(),
		Log:       env.Log(),
		// Tests deploy from namespaces of their own; the tenancy tests narrow this.
		PlatformNamespaces: []string{tenancy.AnyNamespace},
		// Tenants' sources are served by test servers on 127.0.0.1: loopback is
		// allowed here, explicitly, and nothing else of what a hub refuses by default
		// (TestTenantEgress runs a hub that allows none).
		TenantEgressAllow: Loopback,
	}
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	f, err := devenv.Start(ctx, o)
	if err != nil {
		t.Fatalf("start fleet with %d spokes: %v", spokes, err)
	}
	t.Cleanup(func() {
		if err := f.Stop(); err != nil {
			t.Errorf("stop fleet: %v", err)
		}
	})
	t.Logf("fleet with %d spokes started in %s (state in %s)", spokes, time.Since(began).Round(time.Millisecond), f.Dir())
	return &Fleet{Fleet: f, t: t}
}

// HubClient is an admin client of the hub.
func (f *Fleet) HubClient() client.Client { return f.Hub().Client() }

// SpokeClient is an admin client of the named spoke; the test fails when there is none.
func (f *Fleet) SpokeClient(name string) client.Client {
	f.t.Helper()
	s := f.Spoke(name)
	if s == nil {
		f.t.Fatalf("no spoke named %q (spokes: %v)", name, f.Spokes())
	}
	return s.Client()
}

// StopAgent stops a spoke's agent, failing the test on error.
func (f *Fleet) StopAgent(name string) {
	f.t.Helper()
	if err := f.Fleet.StopAgent(name); err != nil {
		f.t.Fatalf("stop agent: %v", err)
	}
}

// StartAgent (re)starts a spoke's agent, failing the test on error.
func (f *Fleet) StartAgent(name string) {
	f.t.Helper()
	if err := f.Fleet.StartAgent(name); err != nil {
		f.t.Fatalf("start agent: %v", err)
	}
}

// For returns the fleet bound to t: its helpers fail t.
func (f *Fleet) For(t testing.TB) *Fleet { return &Fleet{Fleet: f.Fleet, t: t} }

// Shared is a fleet that the tests of a package share (see env.Shared): the first
// test that asks starts it, and it stops after the package's last test, whose
// TestMain calls env.Main.
type Shared struct{ s *env.Shared[*Fleet] }

// Share returns a Shared fleet that start starts, typically with StartFleet and
// whatever the tests expect of every cluster.
func Share(start func(t testing.TB) *Fleet) *Shared {
	return &Shared{s: env.NewShared(start)}
}

// Get returns the fleet for t, which shares it with the other tests running at the
// same time: t keeps to its own namespaces, names and cluster labels.
func (s *Shared) Get(t testing.TB) *Fleet {
	t.Helper()
	return s.s.Get(t).For(t)
}

// Exclusive returns the fleet for t alone, e.g. to stop an agent: t waits until the
// tests using it are done, and they wait until t and its cleanups are.
func (s *Shared) Exclusive(t testing.TB) *Fleet {
	t.Helper()
	return s.s.Exclusive(t).For(t)
}
