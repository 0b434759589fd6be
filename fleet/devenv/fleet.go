package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"

	"github.com/go-logr/logr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/hub/registration"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/spoke/bootstrap"
)

// HubName is the name of the hub's control plane and of its kubeconfig context.
const HubName = "hub"

// SpokeName is the name of the i-th spoke, counting from 1.
func SpokeName(i int) string { return "spoke-" + strconv.Itoa(i) }

// DefaultClusterLabels labels the i-th spoke's Cluster with its name and an
// environment, alternating dev (odd i) and prod (even i), so that a placement can
// select all spokes, one of them, or a part of them.
func DefaultClusterLabels(i int) map[string]string {
	env := "dev"
	if i%2 == 0 {
		env = "prod"
	}
	return map[string]string{"name": SpokeName(i), "env": env}
}

// Options configures a local fleet.
// DefaultPlatformNamespaces are where a local fleet takes deployments no Tenant owns:
// the system namespace and default, so the quick start needs no Tenant.
var DefaultPlatformNamespaces = []string{fleetv1.SystemNamespace, "default"}

// DefaultTenantEgressAllow is what a local fleet lets tenants reach besides public
// addresses: loopback and the private networks (the hub's default refuses both).
var DefaultTenantEgressAllow = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7"),
}

type Options struct {
	// Spokes is the number of spoke clusters, named spoke-1 … spoke-N.
	Spokes int
	// Dir receives hub.kubeconfig, clusters/<name>.kubeconfig, the hub's artifacts and
	// the agents' state. When empty, a temporary folder is used and Stop removes it.
	Dir string
	// StorageDir is where the hub keeps artifacts; Dir/artifacts when empty.
	StorageDir string
	// ClusterLabels returns the labels of the i-th spoke's Cluster (i counts from 1);
	// DefaultClusterLabels when nil.
	ClusterLabels func(i int) map[string]string
	// BinaryDir holds the control-plane binaries; FindBinaries when empty.
	BinaryDir string
	// Log receives the fleet's, the hub's and the agents' logs; dropped when unset.
	Log logr.Logger
	// ControlPlaneOutput receives the etcd and kube-apiserver logs; dropped when nil.
	ControlPlaneOutput io.Writer
	// Parallel is how many control planes start at once; 2 when zero, since each
	// start is CPU-bound for a few seconds.
	Parallel int
	// HeartbeatInterval of the agents and HeartbeatGrace of the hub; their own
	// defaults when zero. Tests shorten them to see a stale cluster quickly.
	HeartbeatInterval time.Duration
	HeartbeatGrace    time.Duration
	// PlatformNamespaces may hold deployments no Tenant owns; DefaultPlatformNamespaces
	// when nil.
	PlatformNamespaces []string
	// TenantEgressAllow are the networks tenants' sources and Providers may make the
	// hub dial besides public addresses (flotilla-hub --tenant-egress-allow);
	// DefaultTenantEgressAllow when nil, since a playground's Git servers and
	// registries run on this machine or its network.
	TenantEgressAllow []netip.Prefix
	// NoAgents registers the Clusters but starts no agent; StartAgent starts one.
	NoAgents bool
	// AdminAgents gives each agent an admin client certificate for the hub and lets
	// anyone download artifacts. By default agents are installed and registered as
	// `flotilla cluster add --kubeconfig` does: a single-use bootstrap token traded for
	// a credential that reaches only the cluster's hub namespace and artifacts.
	AdminAgents bool
	// Hub, when set, adjusts the hub's options before it starts.
	Hub func(*manager.Options)
	// Agent, when set, adjusts an agent's options before each start.
	Agent func(*agent.Options)
	// ReadyTimeout bounds each wait for the hub (cluster namespaces, Ready clusters);
	// 2 minutes when zero.
	ReadyTimeout time.Duration
}

// Fleet is a running local fleet: a hub control plane with the hub running on it and
// spoke control planes, each with an agent.
type Fleet struct {
	opts    Options
	log     logr.Logger
	dir     string
	tempDir bool

	hubCP  *controlplane.ControlPlane
	spokes []*controlplane.ControlPlane

	hub                *manager.Hub
	hubCancel          context.CancelFunc
	hubSystemNamespace string

	mu        sync.Mutex
	agents    map[string]*agentRun
	installed map[string]bool // spokes whose agent install (bootstrap token) is applied

	stopOnce sync.Once
	stopErr  error
}

type agentRun struct {
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	stopped atomic.Bool // by StopAgent or Stop, not by itself
}

// Start starts a fleet and returns once every spoke's Cluster is Ready on the hub (or,
// with NoAgents, has its hub namespace). ctx bounds the start only: the fleet then runs
// until Stop. On error, everything started is stopped again.
func Start(ctx context.Context, opts Options) (f *Fleet, err error) {
	if opts.Spokes < 0 {
		return nil, fmt.Errorf("spokes must not be negative, got %d", opts.Spokes)
	}
	if opts.ClusterLabels == nil {
		opts.ClusterLabels = DefaultClusterLabels
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	if opts.BinaryDir == "" {
		if opts.BinaryDir, err = controlplane.FindBinaries(); err != nil {
			return nil, err
		}
	}
	f = &Fleet{opts: opts, log: opts.Log, agents: map[string]*agentRun{}, installed: map[string]bool{}}
	defer func() {
		if err != nil {
			if stopErr := f.Stop(); stopErr != nil {
				f.log.Error(stopErr, "cleaning up after a failed start")
			}
			f = nil
		}
	}()

	if f.dir, err = f.prepareDir(opts.Dir); err != nil {
		return f, err
	}
	if err = f.startControlPlanes(ctx); err != nil {
		return f, err
	}
	if err = f.writeKubeconfigs(); err != nil {
		return f, err
	}
	if err = f.startHub(ctx); err != nil {
		return f, err
	}
	if err = f.registerClusters(ctx); err != nil {
		return f, err
	}
	if opts.NoAgents {
		return f, nil
	}
	for _, s := range f.spokes {
		if err = f.StartAgent(s.Name()); err != nil {
			return f, err
		}
	}
	return f, f.WaitClustersReady(ctx)
}

func (f *Fleet) prepareDir(dir string) (string, error) {
	if dir == "" {
		f.tempDir = true
		return os.MkdirTemp("", "flotilla-dev-")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return abs, os.MkdirAll(abs, 0o755)
}

// startControlPlanes starts the hub's and the spokes' control planes, a few at a time.
func (f *Fleet) startControlPlanes(ctx context.Context) error {
	names := []string{HubName}
	for i := 1; i <= f.opts.Spokes; i++ {
		names = append(names, SpokeName(i))
	}
	planes := make([]*controlplane.ControlPlane, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, f.opts.Parallel)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return
			}
			opts := controlplane.Options{BinaryDir: f.opts.BinaryDir, Output: f.opts.ControlPlaneOutput}
			if name == HubName {
				crds, err := controlplane.CRDs()
				if err != nil {
					errs[i] = err
					return
				}
				opts.CRDs = crds
			}
			began := time.Now()
			planes[i], errs[i] = controlplane.Start(name, opts)
			if errs[i] == nil {
				f.log.Info("control plane started", "name", name, "url", planes[i].URL(), "took", time.Since(began).Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	// Kept before the error check, so that Stop stops the ones that did start.
	f.hubCP, f.spokes = planes[0], planes[1:]
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return nil
}

func (f *Fleet) writeKubeconfigs() error {
	if err := f.hubCP.WriteKubeconfig(f.HubKubeconfig()); err != nil {
		return err
	}
	for _, s := range f.spokes {
		if err := s.WriteKubeconfig(f.Kubeconfig(s.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fleet) startHub(ctx context.Context) error {
	storage := f.opts.StorageDir
	if storage == "" {
		storage = filepath.Join(f.dir, "artifacts")
	}
	opts := manager.Options{
		Config:             f.hubCP.Config(),
		StorageDir:         storage,
		ArtifactAddr:       "127.0.0.1:0",
		MetricsAddr:        "0",
		HealthAddr:         "0",
		HeartbeatGrace:     f.opts.HeartbeatGrace,
		PlatformNamespaces: f.opts.PlatformNamespaces,
		TenantEgressAllow:  f.opts.TenantEgressAllow,
		// Token-registered agents send their credential; admin ones have none to send.
		AnonymousArtifacts: f.opts.AdminAgents,
	}
	if opts.PlatformNamespaces == nil {
		opts.PlatformNamespaces = DefaultPlatformNamespaces
	}
	if f.opts.HeartbeatInterval > 0 {
		// The hub announces the agents' own interval, so that a test's short one holds.
		opts.AgentHeartbeat = f.opts.HeartbeatInterval
	}
	if opts.TenantEgressAllow == nil {
		opts.TenantEgressAllow = DefaultTenantEgressAllow
	}
	if f.opts.Hub != nil {
		f.opts.Hub(&opts)
	}
	f.hubSystemNamespace = opts.SystemNamespace
	// The hub outlives ctx, which bounds only its start.
	hubCtx, cancel := context.WithCancel(logr.NewContext(context.Background(), f.log))
	f.hubCancel = cancel
	stopEarly := context.AfterFunc(ctx, cancel)
	defer stopEarly()
	h, err := manager.Start(hubCtx, opts)
	if err != nil {
		return fmt.Errorf("start hub: %w", err)
	}
	f.hub = h
	return nil
}

// registerClusters creates a Cluster per spoke and waits for the hub to give each
// its namespace, which the agent needs before it can start.
func (f *Fleet) registerClusters(ctx context.Context) error {
	c := f.hubCP.Client()
	for i, s := range f.spokes {
		cl := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: s.Name(), Labels: f.opts.ClusterLabels(i + 1)}}
		if err := c.Create(ctx, cl); err != nil {
			return fmt.Errorf("register cluster %s: %w", s.Name(), err)
		}
	}
	for _, s := range f.spokes {
		want := fleetv1.ClusterNamespace(s.Name())
		err := f.waitCluster(ctx, s.Name(), "its hub namespace", func(cl *fleetv1.Cluster) bool {
			return cl.Status.Namespace == want
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// WaitClustersReady waits until every spoke's Cluster is Ready on the hub.
func (f *Fleet) WaitClustersReady(ctx context.Context) error {
	for _, s := range f.spokes {
		err := f.waitCluster(ctx, s.Name(), "Ready", func(cl *fleetv1.Cluster) bool {
			return apimeta.IsStatusConditionTrue(cl.Status.Conditions, meta.ReadyCondition)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *Fleet) waitCluster(ctx context.Context, name, what string, done func(*fleetv1.Cluster) bool) error {
	ctx, cancel := context.WithTimeout(ctx, f.opts.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var cl fleetv1.Cluster
	var lastErr error
	for {
		lastErr = f.hubCP.Client().Get(ctx, client.ObjectKey{Name: name}, &cl)
		if lastErr == nil && done(&cl) {
			return nil
		}
		if err := f.agentErr(name); err != nil {
			return fmt.Errorf("the agent of %s stopped: %w", name, err)
		}
		select {
		case <-f.hub.Done():
			return fmt.Errorf("hub stopped while waiting for cluster %s: %v", name, f.hub.Err())
		case <-ctx.Done():
			detail := ""
			if c := apimeta.FindStatusCondition(cl.Status.Conditions, meta.ReadyCondition); c != nil {
				detail = fmt.Sprintf(" (Ready=%s %s: %s)", c.Status, c.Reason, c.Message)
			}
			if lastErr != nil {
				detail = fmt.Sprintf(" (last error: %v)", lastErr)
			}
			return fmt.Errorf("cluster %s did not get %s within %s%s: %w", name, what, f.opts.ReadyTimeout, detail, ctx.Err())
		case <-tick.C:
		}
	}
}

// StartAgent starts the agent of a spoke (again, after StopAgent).
func (f *Fleet) StartAgent(name string) error {
	spoke := f.Spoke(name)
	if spoke == nil {
		return fmt.Errorf("no spoke named %q", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if run := f.agents[name]; run != nil {
		select {
		case <-run.done:
		default:
			return fmt.Errorf("the agent of %s is already running", name)
		}
	}
	opts := agent.Options{
		ClusterName:       name,
		HubNamespace:      fleetv1.ClusterNamespace(name),
		SpokeConfig:       spoke.Config(),
		StateDir:          filepath.Join(f.dir, "agents", name),
		HeartbeatInterval: f.opts.HeartbeatInterval,
		Logger:            f.log.WithName("agent"),
	}
	runAgent := agent.Run
	if f.opts.AdminAgents {
		// Its own certificate, so that the hub's audit log tells agents apart.
		hubCfg, err := f.hubCP.AddUser("flotilla:agent:"+name, "system:masters")
		if err != nil {
			return fmt.Errorf("credential for the agent of %s: %w", name, err)
		}
		opts.HubConfig, opts.TrustedKeys, opts.ArtifactCA = hubCfg, f.hub.PublicKeys(), f.hub.ArtifactCA()
		opts.ArtifactURL = f.hub.ArtifactBaseURL()
	} else {
		if err := f.installAgent(name); err != nil {
			return err
		}
		// What the installed Deployment runs (flotilla-agent --bootstrap), in this
		// process: the spokes have no kubelet. The hub credential, cluster name and
		// trusted keys come from registration.
		runAgent = func(ctx context.Context, opts agent.Options) error {
			return bootstrap.Run(ctx, bootstrap.RunOptions{
				Options: bootstrap.Options{Spoke: spoke.Client(), Log: f.log.WithName("bootstrap").WithValues("cluster", name)},
				Agent:   opts,
			})
		}
	}
	if f.opts.Agent != nil {
		f.opts.Agent(&opts)
	}
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), opts.Logger))
	run := &agentRun{cancel: cancel, done: make(chan struct{})}
	f.agents[name] = run
	go func() {
		defer close(run.done)
		run.err = runAgent(ctx, opts)
		if run.err != nil && ctx.Err() == nil {
			f.log.Error(run.err, "agent stopped", "cluster", name)
		}
	}()
	return nil
}

// installAgent applies a spoke's install manifests with a fresh bootstrap token, as
// `flotilla cluster add NAME --kubeconfig` does, the first time its agent starts;
// later starts reuse the credential the agent stored on the spoke. f.mu is held.
func (f *Fleet) installAgent(name string) error {
	if f.installed[name] {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vals, err := registration.PrepareCluster(ctx, f.hubCP.Client(), f.systemNamespace(), name, nil, time.Hour)
	if err != nil {
		return fmt.Errorf("bootstrap token for %s: %w", name, err)
	}
	if err := registration.ApplyInstall(ctx, f.Spoke(name).Client(), vals); err != nil {
		return fmt.Errorf("install the agent of %s: %w", name, err)
	}
	f.installed[name] = true
	return nil
}

func (f *Fleet) systemNamespace() string {
	if f.hubSystemNamespace != "" {
		return f.hubSystemNamespace
	}
	return manager.DefaultSystemNamespace
}

// StopAgent stops the agent of a spoke and waits until it has stopped; its Cluster
// then goes stale on the hub after the heartbeat grace period.
func (f *Fleet) StopAgent(name string) error {
	if f.Spoke(name) == nil {
		return fmt.Errorf("no spoke named %q", name)
	}
	f.mu.Lock()
	run := f.agents[name]
	f.mu.Unlock()
	if run == nil {
		return nil
	}
	return run.stop()
}

// AgentRunning reports whether the agent of a spoke runs.
func (f *Fleet) AgentRunning(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	run := f.agents[name]
	if run == nil {
		return false
	}
	select {
	case <-run.done:
		return false
	default:
		return true
	}
}

// agentErr is why a spoke's agent stopped by itself, or nil.
func (f *Fleet) agentErr(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	run := f.agents[name]
	if run == nil {
		return nil
	}
	select {
	case <-run.done:
		switch {
		case run.stopped.Load():
			return errors.New("it was stopped")
		case run.err == nil:
			return errors.New("it returned without an error")
		}
		return run.err
	default:
		return nil
	}
}

func (r *agentRun) stop() error {
	r.stopped.Store(true)
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("agent did not stop within 30s")
	}
}

// StopHub stops the hub as if its process ended (keeping its leader Lease, if it
// holds one, until the Lease expires) and waits until it has stopped; control planes
// and agents go on. Tests stop a leading replica this way while another takes over.
func (f *Fleet) StopHub() error {
	if f.hub == nil || f.hubCancel == nil {
		return errors.New("no hub is running")
	}
	f.hubCancel()
	select {
	case <-f.hub.Done():
	case <-time.After(30 * time.Second):
		return errors.New("hub did not stop within 30s")
	}
	if err := f.hub.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Hub is the hub's control plane.
func (f *Fleet) Hub() *controlplane.ControlPlane { return f.hubCP }

// HubInstance is the hub running on the hub's control plane.
func (f *Fleet) HubInstance() *manager.Hub { return f.hub }

// Spoke returns the named spoke's control plane, or nil.
func (f *Fleet) Spoke(name string) *controlplane.ControlPlane {
	for _, s := range f.spokes {
		if s != nil && s.Name() == name {
			return s
		}
	}
	return nil
}

// Spokes lists the spoke names in order.
func (f *Fleet) Spokes() []string {
	names := make([]string, 0, len(f.spokes))
	for _, s := range f.spokes {
		if s != nil {
			names = append(names, s.Name())
		}
	}
	return names
}

// Dir is the folder holding the kubeconfigs and the fleet's state.
func (f *Fleet) Dir() string { return f.dir }

// HubKubeconfig is the path of the hub's kubeconfig: Dir/hub.kubeconfig.
func (f *Fleet) HubKubeconfig() string { return filepath.Join(f.dir, "hub.kubeconfig") }

// Kubeconfig is the path of a spoke's kubeconfig: Dir/clusters/<name>.kubeconfig.
func (f *Fleet) Kubeconfig(name string) string {
	return filepath.Join(f.dir, "clusters", name+".kubeconfig")
}

// Stop stops the agents, then the hub, then every control plane, and removes a
// temporary Dir. It is safe to call more than once.
func (f *Fleet) Stop() error {
	f.stopOnce.Do(func() { f.stopErr = f.stop() })
	return f.stopErr
}

func (f *Fleet) stop() error {
	var errs []error
	f.mu.Lock()
	runs := make(map[string]*agentRun, len(f.agents))
	for name, run := range f.agents {
		runs[name] = run
		run.stopped.Store(true)
		run.cancel() // all at once; waited for below
	}
	f.mu.Unlock()
	for name, run := range runs {
		if err := run.stop(); err != nil {
			errs = append(errs, fmt.Errorf("agent of %s: %w", name, err))
		}
	}
	if f.hubCancel != nil {
		f.hubCancel()
	}
	if f.hub != nil {
		select {
		case <-f.hub.Done():
			if err := f.hub.Err(); err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("hub: %w", err))
			}
		case <-time.After(30 * time.Second):
			errs = append(errs, errors.New("hub did not stop within 30s"))
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, cp := range append([]*controlplane.ControlPlane{f.hubCP}, f.spokes...) {
		if cp == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cp.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if f.tempDir && f.dir != "" {
		if err := os.RemoveAll(f.dir); err != nil {
			errs = append(errs, err)
		}
	}
	f.log.Info("fleet stopped")
	return errors.Join(errs...)
}
