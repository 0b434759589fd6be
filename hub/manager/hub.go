package manager

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/metricsserve"
	"github.com/flotilla-dev/flotilla/hub/agentrollout"
	"github.com/flotilla-dev/flotilla/hub/delivery/helmrelease"
	"github.com/flotilla-dev/flotilla/hub/delivery/kustomize"
	hubfleet "github.com/flotilla-dev/flotilla/hub/fleet"
	"github.com/flotilla-dev/flotilla/hub/gc"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/hub/notification"
	"github.com/flotilla-dev/flotilla/hub/receiver"
	"github.com/flotilla-dev/flotilla/hub/signing"
	"github.com/flotilla-dev/flotilla/hub/source/git"
	"github.com/flotilla-dev/flotilla/hub/source/helm"
	"github.com/flotilla-dev/flotilla/hub/source/oci"
	"github.com/flotilla-dev/flotilla/hub/storage"
	hubtenancy "github.com/flotilla-dev/flotilla/hub/tenancy"
	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// Hub is a running hub.
type Hub struct {
	baseURL string
	caPEM   []byte
	keyring *signing.Keyring
	elected <-chan struct{}
	done    chan struct{}
	err     error
}

// ArtifactBaseURL is where spokes download artifacts from.
func (h *Hub) ArtifactBaseURL() string { return h.baseURL }

// ArtifactCA is the PEM CA certificate that verifies the artifact server's HTTPS
// certificate; agents get it from registration (or the bootstrap Secret).
func (h *Hub) ArtifactCA() []byte { return h.caPEM }

// PublicKeys are the keys agents must trust to verify this hub's artifacts, the
// active one first; they change when the keys are rotated or retired.
func (h *Hub) PublicKeys() []ed25519.PublicKey { return h.keyring.PublicKeys() }

// Elected is closed once this replica leads: at once without leader election.
func (h *Hub) Elected() <-chan struct{} { return h.elected }

// Done is closed when the hub has stopped; Err then says why.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Err is the reason the hub stopped, nil when its context was cancelled.
func (h *Hub) Err() error { return h.err }

// Start starts a hub and returns once its controllers and artifact server run; it
// stops when ctx is cancelled.
func Start(ctx context.Context, opts Options) (*Hub, error) {
	logger := log.FromContext(ctx).WithName("hub")
	if opts.SystemNamespace == "" {
		opts.SystemNamespace = DefaultSystemNamespace
	}
	if opts.PlatformNamespaces == nil {
		opts.PlatformNamespaces = []string{opts.SystemNamespace}
	}
	if opts.StorageDir == "" && !storage.IsOCI(opts.ArtifactStore) {
		return nil, errors.New("a storage directory is required")
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "0"
	}
	if opts.HealthAddr == "0" {
		opts.HealthAddr = ""
	}
	if opts.PprofAddr == "0" {
		opts.PprofAddr = ""
	}
	opts.Config = rest.CopyConfig(opts.Config)
	opts.Config.QPS, opts.Config.Burst = opts.KubeAPIQPS, opts.KubeAPIBurst
	if opts.Config.QPS == 0 {
		opts.Config.QPS = DefaultKubeAPIQPS
	}
	if opts.Config.Burst == 0 {
		opts.Config.Burst = DefaultKubeAPIBurst
	}
	scheme := api.NewScheme()
	direct, err := client.New(opts.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	keys, err := signing.Load(ctx, direct, opts.SystemNamespace)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	keyring := signing.NewKeyring(keys)
	// Published before the manager runs, since registration hands these keys out.
	if err := signing.PublishTrust(ctx, direct, direct, opts.SystemNamespace, keyring); err != nil {
		return nil, fmt.Errorf("publishing trusted keys: %w", err)
	}

	if opts.ArtifactAddr == "" {
		opts.ArtifactAddr = ":9090"
	}
	lis, err := net.Listen("tcp", opts.ArtifactAddr)
	if err != nil {
		return nil, fmt.Errorf("artifact server: %w", err)
	}
	baseURL := opts.ArtifactBaseURL
	if baseURL == "" {
		baseURL = "https://" + lis.Addr().String()
	}
	cert, caPEM, err := artifactTLS(ctx, direct, opts.SystemNamespace, artifactHosts(lis.Addr(), baseURL))
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		// Another replica, starting too, wrote it first: use theirs.
		cert, caPEM, err = artifactTLS(ctx, direct, opts.SystemNamespace, artifactHosts(lis.Addr(), baseURL))
	}
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("artifact server certificate: %w", err)
	}
	store, err := openStore(opts, baseURL)
	if err != nil {
		lis.Close()
		return nil, err
	}

	mgrOpts := ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logger,
		Metrics:                metricsserve.Options(opts.MetricsAddr, opts.MetricsInsecure, opts.MetricsCertDir),
		HealthProbeBindAddress: opts.HealthAddr,
		PprofBindAddress:       opts.PprofAddr,
		// Tests start one hub after another in the same process, and controller
		// names are checked for uniqueness process-wide.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		// No controller reads managedFields, and they are a third of an Assignment
		// (1,096 of 2,808 bytes in make bench-fleet): the cache keeps objects without
		// them. Merge patches computed from a cached object never mention them, and an
		// update without them keeps the server's.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	}
	if opts.LeaderElection {
		leaderElection(&mgrOpts, opts)
	}
	mgr, err := ctrl.NewManager(opts.Config, mgrOpts)
	if err != nil {
		lis.Close()
		return nil, err
	}
	handler, err := artifactMux(ctx, mgr, direct, store, baseURL, caPEM, keyring, opts)
	if err != nil {
		lis.Close()
		return nil, err
	}
	if opts.ReceiverBaseURL, err = serveReceivers(ctx, mgr, handler, baseURL, opts); err != nil {
		lis.Close()
		return nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	// Every replica serves artifacts and registration, leader or not.
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		}()
		if err := srv.ServeTLS(lis, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})); err != nil {
		lis.Close()
		return nil, err
	}
	if opts.GCInterval >= 0 {
		if err := mgr.Add(&gc.Collector{Client: mgr.GetClient(), Store: store, Interval: opts.GCInterval,
			Revisions: opts.GCRevisions, Log: logger.WithName("gc")}); err != nil {
			lis.Close()
			return nil, err
		}
	}
	if err := hubmetrics.Setup(mgr); err != nil {
		lis.Close()
		return nil, err
	}
	if opts.LeaderElection {
		// Registration on a replica that is not the leader hands out the keys too.
		if err := mgr.Add(&signing.Follower{Reader: direct, Keyring: keyring, Namespace: opts.SystemNamespace}); err != nil {
			lis.Close()
			return nil, err
		}
	}
	if err := setupControllers(mgr, store, keyring, opts); err != nil {
		lis.Close()
		return nil, err
	}
	if opts.AgentImage != "" {
		// On the leader: the hub offers its agent to the fleet (hub/agentrollout).
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			agentrollout.Ensure(ctx, mgr.GetClient(), opts.AgentImage, logger.WithName("agentrollout"))
			return nil
		})); err != nil {
			lis.Close()
			return nil, err
		}
	}
	if err := setupClusterAPI(mgr, opts); err != nil {
		lis.Close()
		return nil, err
	}

	h := &Hub{baseURL: baseURL, caPEM: caPEM, keyring: keyring, elected: mgr.Elected(), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.err = mgr.Start(ctx)
		if ctx.Err() != nil && h.err != nil && h.err.Error() == "leader election lost" {
			h.err = nil // the elector says so on every stop, asked for or not
		}
	}()
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		select {
		case <-h.done:
			return nil, fmt.Errorf("hub stopped while starting: %w", h.err)
		default:
			return nil, errors.New("hub caches did not sync")
		}
	}
	logger.Info("hub started", "artifacts", baseURL, "store", storeName(opts), "leaderElection", opts.LeaderElection)
	return h, nil
}

// openStore opens the file store in StorageDir, or the registry of ArtifactStore.
func openStore(opts Options, baseURL string) (storage.Backend, error) {
	switch {
	case opts.ArtifactStore == "":
		return storage.New(opts.StorageDir, baseURL)
	case storage.IsOCI(opts.ArtifactStore):
		o := opts.ArtifactStoreOptions
		o.Insecure = o.Insecure || opts.ArtifactStoreInsecure
		return storage.NewOCI(opts.ArtifactStore, baseURL, o)
	default:
		return nil, fmt.Errorf("artifact store %q: want empty (the storage directory) or %shost/repository", opts.ArtifactStore, storage.OCIScheme)
	}
}

func storeName(opts Options) string {
	if opts.ArtifactStore != "" {
		return opts.ArtifactStore
	}
	return opts.StorageDir
}

// leaderElection makes the controllers and the collector run on one replica at a
// time, with a Lease in the system namespace.
func leaderElection(mo *ctrl.Options, opts Options) {
	mo.LeaderElection = true
	mo.LeaderElectionID = LeaderElectionID
	mo.LeaderElectionNamespace = opts.SystemNamespace
	mo.LeaderElectionReleaseOnCancel = opts.ReleaseLeaseOnStop
	if lease := opts.LeaderElectionLease; lease > 0 {
		renew, retry := lease*2/3, lease*2/15
		mo.LeaseDuration, mo.RenewDeadline, mo.RetryPeriod = &lease, &renew, &retry
	}
}

func setupControllers(mgr ctrl.Manager, store storage.Artifacts, keyring *signing.Keyring, opts Options) error {
	sign := newSignatureCache(keyring).Sign
	// Provider Secrets are read uncached, as the source controllers read theirs.
	// What tenants' sources, charts and Providers may make the hub dial.
	tenantEgress := egress.NewPolicy(opts.TenantEgressAllow...)
	providers := &notification.Providers{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Egress: tenantEgress}
	// The interval agents renew their Lease at, announced on each Lease by the
	// Cluster controller; none announced when AgentHeartbeat is negative.
	var agentHeartbeat *hubfleet.AgentHeartbeat
	if opts.AgentHeartbeat >= 0 {
		agentHeartbeat = &hubfleet.AgentHeartbeat{Client: mgr.GetClient(),
			Policy: hubfleet.HeartbeatPolicy{Pinned: opts.AgentHeartbeat}, Hold: opts.AgentHeartbeatHold}
		if err := agentHeartbeat.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	for _, c := range []interface{ SetupWithManager(ctrl.Manager) error }{
		&signing.Controller{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Keyring: keyring,
			Namespace: opts.SystemNamespace, Recorder: mgr.GetEventRecorder("flotilla-signing")},
		&git.Reconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("flotilla-source"), Egress: tenantEgress},
		&oci.Reconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("flotilla-source"), Egress: tenantEgress},
		&helm.Reconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("flotilla-source"), Egress: tenantEgress},
		&kustomize.Reconciler{Client: mgr.GetClient(), Store: store, Sign: sign, Recorder: mgr.GetEventRecorder("flotilla-delivery"),
			PlatformNamespaces: opts.PlatformNamespaces},
		// The chart fetcher reads repository Secrets uncached, as the source
		// controllers do.
		&helmrelease.Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Store: store,
			Charts: &helm.ChartFetcher{Reader: mgr.GetAPIReader(), Store: store, Egress: tenantEgress}, Sign: sign,
			Recorder: mgr.GetEventRecorder("flotilla-delivery"), PlatformNamespaces: opts.PlatformNamespaces},
		&hubtenancy.Reconciler{Client: mgr.GetClient(), Store: store, Sign: sign, Recorder: mgr.GetEventRecorder("flotilla-tenancy")},
		&agentrollout.Reconciler{Client: mgr.GetClient(), Store: store, Sign: sign, Recorder: mgr.GetEventRecorder("flotilla-agentrollout")},
		&hubfleet.ClusterReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("flotilla-fleet"), HeartbeatGrace: opts.HeartbeatGrace,
			HeartbeatReport: opts.HeartbeatReport, AgentHeartbeat: agentHeartbeat},
		&hubfleet.ClusterGroupReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("flotilla-fleet")},
		&hubfleet.AssignmentReconciler{Client: mgr.GetClient()},
		&notification.ProviderReconciler{Client: mgr.GetClient(), Providers: providers, Recorder: mgr.GetEventRecorder("flotilla-notification")},
		&notification.AlertReconciler{Client: mgr.GetClient(), PlatformNamespaces: opts.PlatformNamespaces},
		&receiver.Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), BaseURL: opts.ReceiverBaseURL,
			Recorder: mgr.GetEventRecorder("flotilla-receiver")},
	} {
		if err := c.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return mgr.Add(&notification.Notifier{Client: mgr.GetClient(), Cache: mgr.GetCache(), Config: mgr.GetConfig(),
		PlatformNamespaces: opts.PlatformNamespaces, Dispatcher: &notification.Dispatcher{Resolve: providers.Resolve}})
}

// everyReplica is a runnable that runs whether or not its replica leads.
type everyReplica func(context.Context) error

func (r everyReplica) Start(ctx context.Context) error { return r(ctx) }

func (everyReplica) NeedLeaderElection() bool { return false }

// Run starts a hub and blocks until it stops.
func Run(ctx context.Context, opts Options) error {
	h, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	<-h.Done()
	return h.Err()
}
