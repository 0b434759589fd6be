package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/flotilla-dev/flotilla/api"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/metricsserve"
	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/spoke/fetch"
	"github.com/flotilla-dev/flotilla/spoke/helm"
)

// Defaults for the zero values of Options.
const (
	DefaultHeartbeatInterval       = 10 * time.Second
	DefaultResyncInterval          = 5 * time.Minute
	DefaultMaxConcurrentReconciles = 4
	DefaultPollInterval            = 2 * time.Second
)

// Run runs the agent until ctx is done: it reconciles the Assignments in the cluster's
// hub namespace onto the spoke and renews the agent's Lease on the hub.
func Run(ctx context.Context, opts Options) error {
	if err := opts.complete(); err != nil {
		return err
	}
	log := opts.Logger.WithValues("cluster", opts.ClusterName)
	if len(opts.TrustedKeys) == 0 {
		log.Info("no trusted keys: every Assignment will fail verification until some are configured")
	}

	scheme := api.NewScheme()
	mgr, err := ctrl.NewManager(opts.HubConfig, ctrl.Options{
		Scheme: scheme,
		Logger: log,
		// The agent's hub credential reaches only its own namespace.
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{opts.HubNamespace: {}}},
		// Scraped on the spoke, so authorised by the spoke's API server.
		Metrics:                metricsserve.OptionsAgainst(opts.SpokeConfig, addr(opts.MetricsAddr), opts.MetricsInsecure, opts.MetricsCertDir),
		HealthProbeBindAddress: addr(opts.HealthAddr),
		LeaderElection:         false,
	})
	if err != nil {
		return fmt.Errorf("hub manager: %w", err)
	}
	if addr(opts.HealthAddr) != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return err
		}
	}

	sp, err := newSpoke(opts.SpokeConfig, scheme)
	if err != nil {
		return err
	}
	keys, err := newAgentTrust(opts)
	if err != nil {
		return err
	}
	transport, err := artifactTransport(opts.HubConfig, opts.ArtifactCA, opts.ArtifactURL)
	if err != nil {
		return err
	}
	fetcher, err := fetch.New(fetch.Options{
		Cluster:     opts.ClusterName,
		ArtifactURL: opts.ArtifactURL,
		Dir:         filepath.Join(opts.StateDir, "artifacts"),
		Keys:        keys.set.Keys,
		Logger:      log.WithName("fetch"),
		Transport:   transport,
	})
	if err != nil {
		return err
	}

	r := &reconciler{
		hub:       mgr.GetClient(),
		live:      mgr.GetAPIReader(),
		events:    mgr.GetEventRecorder(FieldOwner),
		spoke:     sp,
		fetcher:   fetcher,
		helm:      helm.New(sp.config, log.WithName("helm")),
		resync:    opts.ResyncInterval,
		poll:      opts.PollInterval,
		applied:   map[string]appliedRecord{},
		failures:  map[string]int{},
		cluster:   opts.ClusterName,
		state:     &stateStore{client: sp.own, cluster: opts.ClusterName, namespace: opts.Namespace, saved: map[string]string{}},
		namespace: opts.Namespace,
		version:   opts.Version,
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("assignment").
		For(&fleetv1.Assignment{}, builder.WithPredicates(specOrRequestChanged{})).
		WatchesRawSource(keys.source())
	if !opts.DisableDriftWatch {
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		if r.watch, err = newDriftWatch(watchCtx, sp.config, sp.mapper, opts.HubNamespace, log.WithName("drift-watch")); err != nil {
			return err
		}
		b = b.WatchesRawSource(r.watch.source())
	}
	err = b.
		WithOptions(controller.Options{
			MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
			// Several agents may share one process (the dev environment, tests).
			SkipNameValidation: ptr.To(true),
		}).
		Complete(r)
	if err != nil {
		return err
	}
	if err := keys.setup(mgr, opts.HubNamespace); err != nil {
		return err
	}

	hb := &heartbeat{
		writer:       mgr.GetClient(),
		reader:       mgr.GetAPIReader(),
		namespace:    opts.HubNamespace,
		cluster:      opts.ClusterName,
		interval:     opts.HeartbeatInterval,
		minAnnounced: opts.MinAnnouncedHeartbeat,
		versions:     sp.discovery,
		version:      opts.Version,
		log:          log.WithName("heartbeat"),
	}
	if err := mgr.Add(hb); err != nil {
		return err
	}

	off, err := newOffline(r, r.state, opts.HubConfig, opts.ResyncInterval, log.WithName("offline"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { off.run(ctx) })

	log.Info("starting agent", "hubNamespace", opts.HubNamespace, "stateDir", opts.StateDir)
	return mgr.Start(ctx)
}

func (o *Options) complete() error {
	var errs []error
	if o.ClusterName == "" {
		errs = append(errs, errors.New("cluster name is required"))
	}
	if o.HubConfig == nil {
		errs = append(errs, errors.New("hub config is required"))
	}
	if o.SpokeConfig == nil {
		errs = append(errs, errors.New("spoke config is required"))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if o.HubConfig.QPS == 0 {
		// client-go's default (5 per second, burst 10) made 100 new Assignments take
		// 18 s whatever their kind (make bench); the hub's API Priority and Fairness,
		// not each agent, is what shares the hub among a fleet's agents.
		o.HubConfig = rest.CopyConfig(o.HubConfig)
		o.HubConfig.QPS, o.HubConfig.Burst = hubQPS, hubBurst
	}
	if o.HubNamespace == "" {
		o.HubNamespace = fleetv1.ClusterNamespace(o.ClusterName)
	}
	if o.Namespace == "" {
		o.Namespace = fleetv1.SystemNamespace
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(os.TempDir(), "flotilla-agent", o.ClusterName)
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if o.Logger.GetSink() == nil {
		o.Logger = ctrl.Log.WithName("agent")
	}
	if o.Version == nil {
		o.Version = func() string { return version.Version }
	}
	return nil
}

// Client-side rate limits of the agent's hub client, when its config sets none.
const (
	hubQPS   = 50
	hubBurst = 100
)

// addr turns "" into "0", which controller-runtime reads as "off".
func addr(a string) string {
	if a == "" {
		return "0"
	}
	return a
}
