// Command flotilla-hub runs the Flotilla hub: source, delivery and fleet controllers
// and the artifact server.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

func main() {
	var opts manager.Options
	flag.StringVar(&opts.StorageDir, "storage-dir", "/var/lib/flotilla/artifacts", "where artifacts are kept (file store)")
	flag.StringVar(&opts.ArtifactStore, "artifact-store", "", "oci://host/repository keeps artifacts in that registry repository, shared by every replica (default: the file store in --storage-dir); agents still download from the artifact server")
	flag.BoolVar(&opts.ArtifactStoreInsecure, "artifact-store-insecure", false, "reach the --artifact-store registry over plain HTTP")
	// In a cluster the hub may run as several replicas, which must elect a leader;
	// a hub run by hand is one process.
	flag.BoolVar(&opts.LeaderElection, "leader-elect", os.Getenv("KUBERNETES_SERVICE_HOST") != "", "run the controllers on one elected replica (Lease flotilla-hub in the system namespace) while every replica serves artifacts (default: true in a cluster)")
	flag.DurationVar(&opts.LeaderElectionLease, "leader-elect-lease", 15*time.Second, "how long a leader's Lease lasts without renewal")
	flag.StringVar(&opts.ArtifactAddr, "artifact-addr", ":9090", "listen address of the artifact server")
	flag.StringVar(&opts.ArtifactBaseURL, "artifact-base-url", "", "address spokes reach the artifact server at (default: derived from --artifact-addr)")
	flag.StringVar(&opts.ReceiverAddr, "receiver-addr", "", "listen address of a plain-HTTP server for the webhook receivers only (/hook/), to expose to Git hosts behind a TLS-terminating Ingress (default: receivers are served by the artifact server under /hook/)")
	flag.StringVar(&opts.ReceiverBaseURL, "receiver-base-url", "", "address Git hosts reach the receivers at, for each Receiver's status.url (default: derived from --receiver-addr, or the artifact server's address)")
	flag.StringVar(&opts.SystemNamespace, "system-namespace", manager.DefaultSystemNamespace, "namespace of the hub's signing key and trust ConfigMap")
	flag.StringVar(&opts.MetricsAddr, "metrics-addr", ":8080", "Prometheus metrics address; 0 turns metrics off")
	flag.BoolVar(&opts.MetricsInsecure, "metrics-insecure", false, "serve metrics over plain HTTP without authentication (local development only); by default HTTPS, each request authenticated and authorised by the API server (get on /metrics)")
	flag.StringVar(&opts.MetricsCertDir, "metrics-cert-dir", "", "folder with tls.crt and tls.key for the metrics server (default: a self-signed certificate)")
	flag.StringVar(&opts.HealthAddr, "health-addr", ":8081", "health probe address; 0 turns probes off")
	flag.StringVar(&opts.HubServer, "hub-server", "", "address spokes reach this cluster's API server at, handed to agents at registration (default: the address the hub itself uses, which in a Pod is the in-cluster one)")
	hubCAFile := flag.String("hub-ca-file", "", "PEM file of the CA that verifies --hub-server (default: the CA the hub itself uses)")
	flag.StringVar(&opts.AgentImage, "agent-image", "", "agent image installed into Cluster API workload clusters (default: this release's); when set, also offered to every cluster's agent through the AgentRollout flotilla-agent")
	var qps float64
	flag.Float64Var(&qps, "kube-api-qps", manager.DefaultKubeAPIQPS, "requests per second the hub may make to its API server")
	flag.IntVar(&opts.KubeAPIBurst, "kube-api-burst", manager.DefaultKubeAPIBurst, "burst of requests the hub may make to its API server")
	flag.DurationVar(&opts.HeartbeatReport, "heartbeat-report", 5*time.Minute, "how far a Ready Cluster's lastHeartbeatTime may lag its agent's Lease")
	flag.StringVar(&opts.PprofAddr, "pprof-addr", "0", "net/http/pprof address (profiles); 0 turns it off")
	flag.DurationVar(&opts.HeartbeatGrace, "heartbeat-grace", 40*time.Second, "how old an agent heartbeat may be before its Cluster is not Ready")
	flag.Func("agent-heartbeat", "how often agents renew their Lease on the hub, announced to them: auto (10s up to 500 clusters, then about 50 renewals a second fleet-wide, rounded up to 5s, at most 60s) or a duration from 5s to 5m (default auto)", func(v string) error {
		if v == "auto" {
			opts.AgentHeartbeat = 0
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("want auto or a duration: %w", err)
		}
		if d < fleetv1.MinHeartbeatInterval || d > fleetv1.MaxHeartbeatInterval {
			return fmt.Errorf("%s is outside %s..%s", d, fleetv1.MinHeartbeatInterval, fleetv1.MaxHeartbeatInterval)
		}
		opts.AgentHeartbeat = d
		return nil
	})
	flag.Func("platform-namespaces", "comma-separated hub namespaces that may hold deployments no Tenant owns (default: the system namespace)", func(v string) error {
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				opts.PlatformNamespaces = append(opts.PlatformNamespaces, ns)
			}
		}
		return nil
	})
	flag.Func("tenant-egress-allow", "comma-separated CIDRs (or addresses) that tenants' sources and Providers may make the hub dial besides public addresses, for all tenants, e.g. an internal Git server's network (default: none; loopback, link-local, private, shared, unspecified and multicast addresses are refused)", func(v string) error {
		allow, err := egress.ParseAllow(v)
		if err != nil {
			return err
		}
		opts.TenantEgressAllow = append(opts.TenantEgressAllow, allow...)
		return nil
	})
	flag.Func("capi-label-keys", "comma-separated Cluster API Cluster label keys copied to fleet Clusters (\"prefix*\" allows a prefix); none by default", func(v string) error {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				opts.CAPILabelKeys = append(opts.CAPILabelKeys, k)
			}
		}
		return nil
	})
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "flotilla-hub:", err)
		os.Exit(1)
	}
	opts.Config = cfg
	if *hubCAFile != "" {
		if opts.HubCAData, err = os.ReadFile(*hubCAFile); err != nil {
			fmt.Fprintln(os.Stderr, "flotilla-hub:", err)
			os.Exit(1)
		}
	}
	opts.KubeAPIQPS = float32(qps)
	// The process exits as soon as the manager stops, so the Lease can go at once.
	opts.ReleaseLeaseOnStop = true
	if err := manager.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		fmt.Fprintln(os.Stderr, "flotilla-hub:", err)
		os.Exit(1)
	}
}
