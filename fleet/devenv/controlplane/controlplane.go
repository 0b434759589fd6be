package controlplane

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/flotilla-dev/flotilla/api"
)

// Options configures one control plane.
type Options struct {
	// BinaryDir holds etcd, kube-apiserver and kubectl; FindBinaries when empty.
	BinaryDir string
	// CRDs are installed, and established, before Start returns.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// Output receives the etcd and kube-apiserver logs; they are dropped when nil.
	Output io.Writer
	// StartTimeout bounds the start of each process; 90s when zero, because several
	// control planes often start at once on few cores.
	StartTimeout time.Duration
}

// ControlPlane is one local Kubernetes API server: an etcd and a kube-apiserver
// process, reached as a system:masters user with a client certificate.
type ControlPlane struct {
	name   string
	env    *envtest.Environment
	config *rest.Config
	client client.Client

	stopOnce sync.Once
	stopErr  error
}

// Start starts a control plane called name (the name its kubeconfig
// context gets) and returns once its API server answers and the CRDs are established.
func Start(name string, opts Options) (*ControlPlane, error) {
	dir := opts.BinaryDir
	if dir == "" {
		var err error
		if dir, err = FindBinaries(); err != nil {
			return nil, err
		}
	} else if err := checkBinaries(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	scheme := api.NewScheme()
	env := &envtest.Environment{
		Scheme:                   scheme,
		BinaryAssetsDirectory:    dir,
		CRDInstallOptions:        envtest.CRDInstallOptions{CRDs: opts.CRDs, Scheme: scheme},
		ControlPlaneStartTimeout: timeout,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// Explicit paths, so that TEST_ASSET_* and KUBEBUILDER_ASSETS cannot override the
	// folder chosen above.
	env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(dir, "etcd")}
	env.ControlPlane.APIServer = &envtest.APIServer{Path: filepath.Join(dir, "kube-apiserver")}
	env.ControlPlane.KubectlPath = filepath.Join(dir, "kubectl")
	if opts.Output != nil {
		env.ControlPlane.Etcd.Out, env.ControlPlane.Etcd.Err = opts.Output, opts.Output
		env.ControlPlane.APIServer.Out, env.ControlPlane.APIServer.Err = opts.Output, opts.Output
	}
	cfg, err := env.Start()
	if err != nil {
		// envtest leaves the processes running when a step after their start fails.
		_ = env.Stop()
		return nil, fmt.Errorf("start control plane %s: %w", name, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("client for control plane %s: %w", name, err)
	}
	return &ControlPlane{name: name, env: env, config: cfg, client: c}, nil
}

// Name of the control plane, e.g. hub or spoke-1.
func (c *ControlPlane) Name() string { return c.name }

// Config returns a copy of the admin configuration.
func (c *ControlPlane) Config() *rest.Config { return rest.CopyConfig(c.config) }

// Client is an admin client with the Kubernetes and Flotilla kinds.
func (c *ControlPlane) Client() client.Client { return c.client }

// BinaryDir is the folder of the binaries this control plane runs.
func (c *ControlPlane) BinaryDir() string { return c.env.BinaryAssetsDirectory }

// URL of the API server.
func (c *ControlPlane) URL() string { return c.config.Host }

// EtcdURL is the client URL of the control plane's etcd, which also serves its
// Prometheus metrics at /metrics (the fleet benchmark reads the database size there).
func (c *ControlPlane) EtcdURL() string {
	if c.env.ControlPlane.Etcd == nil || c.env.ControlPlane.Etcd.URL == nil {
		return ""
	}
	return c.env.ControlPlane.Etcd.URL.String()
}

// AddUser returns the configuration of a new client-certificate user.
func (c *ControlPlane) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return u.Config(), nil
}

// Kubeconfig renders the admin configuration as a kubeconfig whose cluster, user and
// current context are all named after the control plane.
func (c *ControlPlane) Kubeconfig() ([]byte, error) {
	return KubeconfigFor(c.name, c.config)
}

// WriteKubeconfig writes Kubeconfig to path (mode 0600), creating its folder.
func (c *ControlPlane) WriteKubeconfig(path string) error {
	b, err := c.Kubeconfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600)
}

// Stop stops the API server and etcd and deletes their data. It is safe to call more
// than once.
func (c *ControlPlane) Stop() error {
	c.stopOnce.Do(func() {
		if err := c.env.Stop(); err != nil {
			c.stopErr = fmt.Errorf("stop control plane %s: %w", c.name, err)
		}
	})
	return c.stopErr
}

// KubeconfigFor renders a rest.Config that uses certificates or a token as a
// kubeconfig with one context called name.
func KubeconfigFor(name string, cfg *rest.Config) ([]byte, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   strings.TrimSuffix(cfg.Host, "/"),
		CertificateAuthorityData: cfg.CAData,
		TLSServerName:            cfg.ServerName,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
	}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	return clientcmd.Write(*kc)
}

// writeFileAtomic writes through a temporary file, so that a reader polling for the
// file never sees it half written.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
