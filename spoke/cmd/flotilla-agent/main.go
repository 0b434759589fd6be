package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/registration"
	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/spoke/bootstrap"
)

func main() {
	var (
		opts          agent.Options
		hubKubeconfig string
		kubeconfig    string
		trustedKeys   string
		artifactCA    string
		bootstrapMode bool
	)
	// An own flag set: controller-runtime registers its own --kubeconfig on the global one.
	fs := flag.NewFlagSet("flotilla-agent", flag.ExitOnError)
	fs.StringVar(&opts.ClusterName, "cluster-name", "", "name of this cluster's Cluster on the hub (required)")
	fs.StringVar(&hubKubeconfig, "hub-kubeconfig", "", "kubeconfig of the hub, with this cluster's credential (required)")
	fs.StringVar(&opts.HubNamespace, "hub-namespace", "", "this cluster's namespace on the hub (default flotilla-cluster-<cluster-name>)")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of this cluster; in-cluster config when empty")
	fs.StringVar(&trustedKeys, "trusted-keys", "", "PEM file of the public keys that sign artifacts (required)")
	fs.StringVar(&opts.ArtifactURL, "artifact-url", "", "base URL of the hub's artifact server: artifacts come from there only and the hub credential goes nowhere else (bootstrap mode: from registration)")
	fs.StringVar(&artifactCA, "artifact-ca", "", "PEM file of the CA that verifies the hub's artifact server (HTTPS); the system roots when empty")
	fs.StringVar(&opts.StateDir, "state-dir", "", "folder for the artifact cache (default a temporary folder)")
	fs.StringVar(&opts.MetricsAddr, "metrics-addr", ":8080", `metrics listen address; "0" turns it off`)
	fs.BoolVar(&opts.MetricsInsecure, "metrics-insecure", false, "serve metrics over plain HTTP without authentication (local development only); by default HTTPS, each request authenticated and authorised by the spoke's API server (get on /metrics)")
	fs.StringVar(&opts.MetricsCertDir, "metrics-cert-dir", "", "folder with tls.crt and tls.key for the metrics server (default: a self-signed certificate)")
	fs.StringVar(&opts.HealthAddr, "health-addr", "0", `/healthz and /readyz listen address; "0" turns it off`)
	fs.DurationVar(&opts.HeartbeatInterval, "heartbeat-interval", 10*time.Second, "time between renewals of the agent's Lease on the hub")
	fs.DurationVar(&opts.ResyncInterval, "resync-interval", 5*time.Minute, "time between re-applies of an unchanged Assignment")
	driftWatch := fs.Bool("drift-watch", true, "watch applied objects (metadata only) and check an Assignment for drift within seconds of a change to one of its objects; when false, drift is found at each resync only")
	fs.BoolVar(&bootstrapMode, "bootstrap", false, "register with the bootstrap token in the spoke Secret flotilla-agent-bootstrap and keep the credential in flotilla-agent-hub; --cluster-name, --hub-kubeconfig and --trusted-keys then come from the hub")
	fs.StringVar(&opts.Namespace, "bootstrap-namespace", registration.SpokeNamespace, "the agent's namespace on the spoke: bootstrap and credential Secrets, state Secrets, SOPS decryption keys")
	showVersion := fs.Bool("version", false, "print the version and exit")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	_ = fs.Parse(os.Args[1:])

	opts.DisableDriftWatch = !*driftWatch
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if bootstrapMode {
		if err := runBootstrap(&opts, kubeconfig, opts.Namespace); err != nil {
			fmt.Fprintln(os.Stderr, "flotilla-agent:", err)
			os.Exit(1)
		}
		return
	}
	if artifactCA != "" {
		ca, err := os.ReadFile(artifactCA)
		if err != nil {
			fmt.Fprintln(os.Stderr, "flotilla-agent:", err)
			os.Exit(1)
		}
		opts.ArtifactCA = ca
	}
	if err := run(&opts, hubKubeconfig, kubeconfig, trustedKeys); err != nil {
		fmt.Fprintln(os.Stderr, "flotilla-agent:", err)
		os.Exit(1)
	}
}

func run(opts *agent.Options, hubKubeconfig, kubeconfig, trustedKeys string) error {
	if opts.ClusterName == "" || hubKubeconfig == "" || trustedKeys == "" {
		return fmt.Errorf("--cluster-name, --hub-kubeconfig and --trusted-keys are required")
	}
	var err error
	if opts.HubConfig, err = clientcmd.BuildConfigFromFlags("", hubKubeconfig); err != nil {
		return fmt.Errorf("hub kubeconfig: %w", err)
	}
	if kubeconfig != "" {
		opts.SpokeConfig, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		opts.SpokeConfig, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("spoke config: %w", err)
	}
	pem, err := os.ReadFile(trustedKeys)
	if err != nil {
		return err
	}
	if opts.TrustedKeys, err = artifact.ParsePublicKeys(pem); err != nil {
		return fmt.Errorf("%s: %w", trustedKeys, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts.Logger = ctrl.Log.WithName("agent")
	return agent.Run(ctx, *opts)
}

// runBootstrap is how the installed Deployment runs the agent: the hub credential,
// cluster name and trusted keys come from registration, not from flags.
func runBootstrap(opts *agent.Options, kubeconfig, namespace string) error {
	var err error
	if kubeconfig != "" {
		opts.SpokeConfig, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		opts.SpokeConfig, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("spoke config: %w", err)
	}
	spoke, err := client.New(opts.SpokeConfig, client.Options{})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts.Logger = ctrl.Log.WithName("agent")
	return bootstrap.Run(ctx, bootstrap.RunOptions{
		Options: bootstrap.Options{Spoke: spoke, Namespace: namespace, Log: ctrl.Log.WithName("bootstrap")},
		Agent:   *opts,
	})
}
