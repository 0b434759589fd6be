package manager

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"k8s.io/utils/ptr"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/fleet/artifact"
	"github.com/flotilla-dev/flotilla/hub/delivery/kustomize"
	hubfleet "github.com/flotilla-dev/flotilla/hub/fleet"
	"github.com/flotilla-dev/flotilla/hub/source/git"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// Hub is a running hub.
type Hub struct {
	baseURL string
	keys    []ed25519.PublicKey
	done    chan struct{}
	err     error
}

// ArtifactBaseURL is where spokes download artifacts from.
func (h *Hub) ArtifactBaseURL() string { return h.baseURL }

// PublicKeys are the keys agents must trust to verify this hub's artifacts.
func (h *Hub) PublicKeys() []ed25519.PublicKey { return h.keys }

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
	key, err := loadSigningKey(ctx, direct, opts.SystemNamespace)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if err := publishTrust(ctx, direct, opts.SystemNamespace, pub); err != nil {
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
		baseURL = "http://" + lis.Addr().String()
	}
	store, err := storage.New(opts.StorageDir, baseURL)
	if err != nil {
		lis.Close()
		return nil, err
	}

	mgr, err := ctrl.NewManager(opts.Config, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logger,
		Metrics:                metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress: opts.HealthAddr,
		// Tests and `dev up` may run several hubs in one process, one after another.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	srv := &http.Server{Handler: store.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if err := mgr.Add(runnable(func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		}()
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})); err != nil {
		lis.Close()
		return nil, err
	}
	if err := setupControllers(mgr, store, key, opts); err != nil {
		lis.Close()
		return nil, err
	}

	h := &Hub{baseURL: baseURL, keys: []ed25519.PublicKey{pub}, done: make(chan struct{})}
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

func setupControllers(mgr ctrl.Manager, store *storage.Store, key ed25519.PrivateKey, opts Options) error {
	sign := func(d string) string { return artifact.Sign(key, d) }
	for _, c := range []interface{ SetupWithManager(ctrl.Manager) error }{
		&git.Reconciler{Client: mgr.GetClient(), Store: store, Recorder: mgr.GetEventRecorder("flotilla-source")},
		&kustomize.Reconciler{Client: mgr.GetClient(), Store: store, Sign: sign, Recorder: mgr.GetEventRecorder("flotilla-delivery")},
		&hubfleet.ClusterReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("flotilla-fleet"), HeartbeatGrace: opts.HeartbeatGrace},
		&hubfleet.ClusterGroupReconciler{Client: mgr.GetClient()},
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

// loadSigningKey reads the hub's signing key, creating the Secret on first start.
func loadSigningKey(ctx context.Context, c client.Client, ns string) (ed25519.PrivateKey, error) {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	var s corev1.Secret
	err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: SigningKeySecret}, &s)
	if apierrors.IsNotFound(err) {
		key, err := artifact.GenerateKey()
		if err != nil {
			return nil, err
		}
		pemKey, err := artifact.MarshalPrivateKey(key)
		if err != nil {
			return nil, err
		}
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: SigningKeySecret},
			Data:       map[string][]byte{"private.pem": pemKey},
		}
		if err := c.Create(ctx, &s); err != nil {
			if !apierrors.IsAlreadyExists(err) {
				return nil, err
			}
			return loadSigningKey(ctx, c, ns) // another hub replica won the race
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	return artifact.ParsePrivateKey(s.Data["private.pem"])
}

// publishTrust writes the public keys agents should trust into a ConfigMap.
func publishTrust(ctx context.Context, c client.Client, ns string, keys ...ed25519.PublicKey) error {
	data, err := artifact.MarshalPublicKeys(keys...)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: TrustConfigMap}}
	err = c.Get(ctx, client.ObjectKeyFromObject(cm), cm)
	if apierrors.IsNotFound(err) {
		cm.Data = map[string]string{"keys.pem": string(data)}
		return c.Create(ctx, cm)
	}
	if err != nil {
		return err
	}
	cm.Data = map[string]string{"keys.pem": string(data)}
	return c.Update(ctx, cm)
}

// Run starts a hub and blocks until it stops.
func Run(ctx context.Context, opts Options) error {
	h, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	<-h.Done()
	return h.Err()
}
