package manager

import (
	"time"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"

	"k8s.io/client-go/rest"
)

// DefaultSystemNamespace holds the hub's own Secrets and ConfigMaps.
const DefaultSystemNamespace = fleetv1.SystemNamespace

// Options configures one hub.
type Options struct {
	// Config reaches the hub cluster's API server.
	Config *rest.Config
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
	// MetricsInsecure serves metrics over plain HTTP to anyone (local development and
	// tests); by default they are HTTPS, and a request needs a token the hub's API
	// server authenticates and allows to get the non-resource URL /metrics.
	MetricsInsecure bool
	// MetricsCertDir holds tls.crt and tls.key for the metrics server; a self-signed
	// certificate when empty.
	MetricsCertDir string
	// HealthAddr for /healthz and /readyz; "0" or empty turns them off.
	HealthAddr string
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
