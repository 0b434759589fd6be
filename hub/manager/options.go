package manager

import (
	"time"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"

	"k8s.io/client-go/rest"
)

// DefaultSystemNamespace holds the hub's own Secrets and ConfigMaps.
const DefaultSystemNamespace = fleetv1.SystemNamespace

// Defaults of the hub's client rate limit (Options.KubeAPIQPS, KubeAPIBurst); the API
// server's own priority and fairness still protects it.
const (
	DefaultKubeAPIQPS   = 300
	DefaultKubeAPIBurst = 600
)

// Options configures one hub.
type Options struct {
	// Config reaches the hub cluster's API server.
	Config *rest.Config
	// KubeAPIQPS and KubeAPIBurst bound the hub's own requests to its API server
	// (client-go's rate limiter); DefaultKubeAPIQPS and DefaultKubeAPIBurst when zero.
	// A rollout writes one Assignment per targeted cluster, so client-go's 20 QPS
	// default would take 50 s for 1,000 clusters × one deployment.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// StorageDir is where artifacts are kept.
	StorageDir string
	// ArtifactAddr is the listen address of the artifact server, e.g. 127.0.0.1:0.
	ArtifactAddr string
	// ArtifactBaseURL is the address spokes reach the artifact server at; derived from
	// the listener when empty.
	ArtifactBaseURL string
	// SystemNamespace holds the signing key; DefaultSystemNamespace when empty.
	SystemNamespace string
	// MetricsAddr for Prometheus metrics; "0" turns them off.
	MetricsAddr string
	// HealthAddr for /healthz and /readyz; "0" or empty turns them off.
	HealthAddr string
	// PprofAddr serves net/http/pprof (CPU and heap profiles); "0" or empty turns it off.
	PprofAddr string
	// AnonymousArtifacts lets anyone who reaches the artifact server download any
	// artifact. By default a request needs an agent's hub credential and gets only
	// artifacts assigned to its cluster (hub/artifactauth); agents registered with a
	// bootstrap token (hub/registration) have such a credential, admin ones do not.
	AnonymousArtifacts bool
	// HubServer and HubCAData are how spokes reach the hub's API server, handed to
	// agents at registration; Config's host and CA when empty.
	HubServer string
	HubCAData []byte
	// AgentImage is the agent image installed into Cluster API workload clusters;
	// registration.DefaultAgentImage when empty.
	AgentImage string
	// HeartbeatGrace is how old an agent's heartbeat may be before its Cluster is not Ready.
	HeartbeatGrace time.Duration
	// HeartbeatReport is how far a Ready Cluster's lastHeartbeatTime may lag its
	// Lease (hub/fleet.DefaultHeartbeatReport when zero).
	HeartbeatReport time.Duration
	// CAPILabelKeys are the Cluster API Cluster label keys copied to fleet Clusters
	// ("prefix*" allows a prefix); none when empty.
	CAPILabelKeys []string
	// PlatformNamespaces may hold deployments that no Tenant owns; the system
	// namespace when nil. "*" makes every unowned namespace one (development only).
	PlatformNamespaces []string
	// GCInterval is how often unreferenced artifacts are deleted from StorageDir
	// (hub/gc); 10m when zero, never when negative.
	GCInterval time.Duration
	// GCRevisions is how many of the last artifacts of each source and deployment
	// the collector keeps; 3 when zero.
	GCRevisions int
}
