package manager

import (
	"net/netip"
	"time"

	"github.com/flotilla-dev/flotilla/hub/storage"

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

// LeaderElectionID is the name of the Lease the hub's replicas elect a leader with.
const LeaderElectionID = "flotilla-hub"

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
	// StorageDir is where artifacts are kept with the file store.
	StorageDir string
	// ArtifactStore is where artifacts are kept: empty for the file store in
	// StorageDir, or oci://host/repository for a registry (storage.OCIStore), which
	// every replica of the hub shares. Agents download from the artifact server
	// either way.
	ArtifactStore string
	// ArtifactStoreInsecure lets the OCI store use plain HTTP.
	ArtifactStoreInsecure bool
	// ArtifactStoreOptions adjusts the OCI store (registry credentials, transport,
	// cache); ArtifactStoreInsecure is applied on top.
	ArtifactStoreOptions storage.OCIOptions
	// LeaderElection lets several replicas run on one hub: the controllers and the
	// collector run on the one holding the Lease LeaderElectionID in the system
	// namespace, while every replica serves artifacts and registration.
	LeaderElection bool
	// LeaderElectionLease is how long a leader's Lease lasts without renewal, which
	// is how long a crashed leader's work waits; 15s when zero (renewed within 2/3 of
	// it, retried every 2/15 of it).
	LeaderElectionLease time.Duration
	// ReleaseLeaseOnStop gives the Lease up when the hub stops, so that another
	// replica takes over at once; the process must exit right after.
	ReleaseLeaseOnStop bool
	// ArtifactAddr is the listen address of the artifact server, e.g. 127.0.0.1:0.
	ArtifactAddr string
	// ArtifactBaseURL is the address spokes reach the artifact server at; derived from
	// the listener when empty.
	ArtifactBaseURL string
	// ReceiverAddr, when set, is a listener of its own for the webhook receivers
	// (plain HTTP, /hook/ only), to be exposed to Git hosts through an Ingress or a
	// load balancer that terminates TLS, apart from the artifact server. When empty,
	// receivers are served by the artifact server (HTTPS) under /hook/.
	ReceiverAddr string
	// ReceiverBaseURL is the address callers reach the receivers at, for each
	// Receiver's status.url; derived from the listener when empty.
	ReceiverBaseURL string
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
	// registration.DefaultAgentImage when empty. When set, the hub also writes it
	// into the AgentRollout flotilla-agent at start, which upgrades every cluster's
	// agent through the Assignment path (hub/agentrollout).
	AgentImage string
	// HeartbeatGrace is how old an agent's heartbeat may be before its Cluster is not
	// Ready; a Cluster whose Lease says it renews less often than every grace/4 gets
	// 4 × that interval instead (hub/fleet.HeartbeatGrace).
	HeartbeatGrace time.Duration
	// AgentHeartbeat is the interval the hub asks agents to renew their Lease at
	// (announced on each Lease): zero for auto (hub/fleet.AutoHeartbeat: 10s up to
	// 500 Clusters, then about 50 renewals a second, at most 60s), positive to pin it
	// (the flag allows 5s..5m; tests may pin less), negative to announce nothing.
	AgentHeartbeat time.Duration
	// AgentHeartbeatHold is the shortest time between two changes of the auto
	// interval (hub/fleet.DefaultHeartbeatHold when zero).
	AgentHeartbeatHold time.Duration
	// HeartbeatReport is how far a Ready Cluster's lastHeartbeatTime may lag its
	// Lease (hub/fleet.DefaultHeartbeatReport when zero).
	HeartbeatReport time.Duration
	// CAPILabelKeys are the Cluster API Cluster label keys copied to fleet Clusters
	// ("prefix*" allows a prefix); none when empty.
	CAPILabelKeys []string
	// PlatformNamespaces may hold deployments that no Tenant owns; the system
	// namespace when nil. "*" makes every unowned namespace one (development only).
	PlatformNamespaces []string
	// TenantEgressAllow are networks that tenants' sources and Providers may make the
	// hub dial besides public addresses (tenancy/egress), for every tenant: an
	// internal Git server, or loopback for local development and tests. None when
	// empty. Objects in namespaces no Tenant owns are never restricted.
	TenantEgressAllow []netip.Prefix
	// GCInterval is how often unreferenced artifacts are deleted from StorageDir
	// (hub/gc); 10m when zero, never when negative.
	GCInterval time.Duration
	// GCRevisions is how many of the last artifacts of each source and deployment
	// the collector keeps; 3 when zero.
	GCRevisions int
}
