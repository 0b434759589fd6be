package agent

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Client-side rate limits of the agent's spoke clients, when its config sets none.
const (
	spokeQPS   = 500
	spokeBurst = 1000
)

// spoke reaches the cluster the agent runs on. Each Assignment gets the client of
// the identity it names, so that a tenant's objects are written with its rights.
type spoke struct {
	config    *rest.Config
	scheme    *runtime.Scheme
	mapper    meta.RESTMapper
	own       client.Client
	discovery discovery.ServerVersionInterface

	mu            sync.Mutex
	impersonating map[string]client.Client
}

func newSpoke(cfg *rest.Config, scheme *runtime.Scheme) (*spoke, error) {
	// client-go's default of 5 requests per second makes a 1,000-object apply take
	// minutes; the agent talks to its own, local API server.
	if cfg.QPS == 0 {
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = spokeQPS, spokeBurst
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("spoke client: %w", err)
	}
	// The dynamic mapper reloads discovery when a kind is missing, which is what
	// makes objects of a CRD applied a moment earlier mappable.
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("spoke RESTMapper: %w", err)
	}
	own, err := client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper, HTTPClient: httpClient})
	if err != nil {
		return nil, fmt.Errorf("spoke client: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("spoke discovery: %w", err)
	}
	return &spoke{config: cfg, scheme: scheme, mapper: mapper, own: own, discovery: disco,
		impersonating: map[string]client.Client{}}, nil
}

// serviceAccountUser is the user name an Assignment's service account acts as. It
// lives in spec.serviceAccountNamespace, else the target namespace, else "default".
func serviceAccountUser(a *fleetv1.Assignment) string {
	if a.Spec.ServiceAccountName == "" {
		return ""
	}
	ns := a.Spec.ServiceAccountNamespace
	if ns == "" {
		ns = a.Spec.TargetNamespace
	}
	if ns == "" {
		ns = "default"
	}
	return "system:serviceaccount:" + ns + ":" + a.Spec.ServiceAccountName
}

// clientFor returns the client that acts as user, the agent itself when user is "".
// Clients are kept, so that each identity's connections are reused.
func (s *spoke) clientFor(user string) (client.Client, error) {
	if user == "" {
		return s.own, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.impersonating[user]; ok {
		return c, nil
	}
	cfg := rest.CopyConfig(s.config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: s.scheme, Mapper: s.mapper, HTTPClient: httpClient})
	if err != nil {
		return nil, err
	}
	s.impersonating[user] = c
	return c, nil
}
