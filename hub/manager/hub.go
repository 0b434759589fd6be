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

	hubtenancy "github.com/flotilla-dev/flotilla/hub/tenancy"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/metricsserve"
	"github.com/flotilla-dev/flotilla/hub/delivery/helmrelease"
	"github.com/flotilla-dev/flotilla/hub/delivery/kustomize"
	hubfleet "github.com/flotilla-dev/flotilla/hub/fleet"
	"github.com/flotilla-dev/flotilla/hub/gc"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/hub/signing"
	"github.com/flotilla-dev/flotilla/hub/source/git"
	"github.com/flotilla-dev/flotilla/hub/source/helm"
	"github.com/flotilla-dev/flotilla/hub/source/oci"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// Hub is a running hub.
type Hub struct {
	baseURL string
	caPEM   []byte
	keyring *signing.Keyring
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
	if opts.StorageDir == "" {
		return nil, errors.New("a storage directory is required")
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "0"
	}
	if opts.HealthAddr == "0" {
		opts.HealthAddr = ""
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
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("artifact server certificate: %w", err)
	}
	store, err := storage.New(opts.StorageDir, baseURL)
	if err != nil {
		lis.Close()
		return nil, err
	}

	mgr, err := ctrl.NewManager(opts.Config, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logger,
		Metrics:                metricsserve.Options(opts.MetricsAddr, opts.MetricsInsecure, opts.MetricsCertDir),
		HealthProbeBindAddress: opts.HealthAddr,
		// Tests start one hub after another in the same process, and controller
		// names are checked for uniqueness process-wide.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	handler, err := artifactMux(ctx, mgr, direct, store, baseURL, caPEM, keyring.PublicKeys, opts)
	if err != nil {
		lis.Close()
		return nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	if err := mgr.Add(runnable(func(ctx context.Context) error {
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
	if err := setupControllers(mgr, store, keyring, opts); err != nil {
		lis.Close()
		return nil, err
	}
	if err := setupClusterAPI(mgr, opts); err != nil {
		lis.Close()
		return nil, err
	}

	h := &Hub{baseURL: baseURL, caPEM: caPEM, keyring: keyring, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.err = mgr.Start(ctx)
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
	logger.Info("hub started", "artifacts", baseURL)
	return h, nil
}

func setupControllers(mgr ctrl.Manager, store *storage.Store, keyring *signing.Keyring, opts Options) error {
	sign := keyring.SignStatement
	for _, c := range []interface{ SetupWithManager(ctrl.Manager) error }{
		&signing.Controller{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Keyring: keyring,
			Namespace: opts.SystemNamespace, Recorder: mgr.GetEventRecorder("flotilla-signing")},
		&git.Reconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("flotilla-source")},
		&oci.Reconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("flotilla-source")},
		&helm.Reconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("flotilla-source")},
		&kustomize.Reconciler{Client: mgr.GetClient(), Store: store, Sign: sign, Recorder: mgr.GetEventRecorder("flotilla-delivery"),
			PlatformNamespaces: opts.PlatformNamespaces},
		// The chart fetcher reads repository Secrets uncached, as the source
		// controllers do.
		&helmrelease.Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Store: store,
			Charts: &helm.ChartFetcher{Reader: mgr.GetAPIReader(), Store: store}, Sign: sign,
			Recorder: mgr.GetEventRecorder("flotilla-delivery"), PlatformNamespaces: opts.PlatformNamespaces},
		&hubtenancy.Reconciler{Client: mgr.GetClient(), Store: store, Sign: sign, Recorder: mgr.GetEventRecorder("flotilla-tenancy")},
		&hubfleet.ClusterReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("flotilla-fleet"), HeartbeatGrace: opts.HeartbeatGrace},
		&hubfleet.ClusterGroupReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("flotilla-fleet")},
		&hubfleet.AssignmentReconciler{Client: mgr.GetClient()},
	} {
		if err := c.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}

type runnable func(context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }

// Run starts a hub and blocks until it stops.
func Run(ctx context.Context, opts Options) error {
	h, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	<-h.Done()
	return h.Err()
}
