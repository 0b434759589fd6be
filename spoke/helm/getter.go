package helm

import (
	"fmt"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// scheme holds the built-in kinds and CustomResourceDefinitions.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	return s
}()

// identity is what one user (an impersonated service account, or the agent itself)
// needs to talk to the spoke; kept per user, so that discovery is read once and
// connections are reused across reconciles.
type identity struct {
	config    *rest.Config
	discovery discovery.CachedDiscoveryInterface
	mapper    *restmapper.DeferredDiscoveryRESTMapper
	client    client.Client
}

type identities struct {
	base *rest.Config
	mu   sync.Mutex
	by   map[string]*identity
}

// get returns user's identity; "" is the agent's own.
func (s *identities) get(user string) (*identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.by[user]; ok {
		return id, nil
	}
	cfg := rest.CopyConfig(s.base)
	if user != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery for %s: %w", who(user), err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	c, err := client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", who(user), err)
	}
	id := &identity{config: cfg, discovery: cached, mapper: mapper, client: c}
	s.by[user] = id
	return id, nil
}

// getter is the genericclioptions.RESTClientGetter Helm's actions are built on: an
// identity, and the release's namespace as the default namespace of its objects.
type getter struct {
	id        *identity
	namespace string
}

func (g *getter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.id.config), nil }

func (g *getter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return g.id.discovery, nil
}

func (g *getter) ToRESTMapper() (apimeta.RESTMapper, error) { return g.id.mapper, nil }

func (g *getter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return &namespaceConfig{getter: g}
}

// namespaceConfig is the little of a kubeconfig Helm reads: the REST config and the
// default namespace.
type namespaceConfig struct{ getter *getter }

func (c *namespaceConfig) RawConfig() (clientcmdapi.Config, error) {
	return clientcmdapi.Config{}, nil
}

func (c *namespaceConfig) ClientConfig() (*rest.Config, error) { return c.getter.ToRESTConfig() }

func (c *namespaceConfig) Namespace() (string, bool, error) {
	return c.getter.namespace, false, nil
}

func (c *namespaceConfig) ConfigAccess() clientcmd.ConfigAccess {
	return clientcmd.NewDefaultClientConfigLoadingRules()
}

func who(user string) string {
	if user == "" {
		return "the agent"
	}
	return user
}
