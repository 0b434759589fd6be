package agent

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"time"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

// FieldOwner names the agent where it acts for itself: its events and its own
// records on the spoke.
const FieldOwner = "flotilla-agent"

// FieldManager is the server-side apply field manager of one deployment's objects:
// one per deployment, so the API server tells whose fields are whose.
func FieldManager(a *fleetv1.Assignment) string {
	m := "flotilla/" + a.Name
	if len(m) <= 128 {
		return m
	}
	sum := sha256.Sum256([]byte(a.Name))
	return m[:111] + "." + hex.EncodeToString(sum[:8])
}

// Options configures one agent.
type Options struct {
	// ClusterName is the name of this cluster's Cluster object on the hub.
	ClusterName string
	// HubConfig reaches the hub with this cluster's credential.
	HubConfig *rest.Config
	// HubNamespace is this cluster's namespace on the hub; fleetv1.ClusterNamespace(ClusterName) when empty.
	HubNamespace string
	// Namespace is the agent's own namespace on the spoke: its state Secrets and the
	// SOPS decryption key Secrets live there; fleetv1.SystemNamespace when empty.
	Namespace string
	// SpokeConfig reaches the cluster the agent runs on.
	SpokeConfig *rest.Config
	// TrustedKeys verify artifact signatures; nothing is applied without one matching.
	TrustedKeys []ed25519.PublicKey
	// ArtifactURL is the base URL of the hub's artifact server, as registration
	// answered it: artifacts are downloaded from there only, and the agent's hub
	// credential is sent nowhere else. Any URL (without the credential over plain
	// HTTP) when empty.
	ArtifactURL string
	// ArtifactCA is the PEM CA certificate that verifies the hub's artifact server
	// (HTTPS); the system roots when empty.
	ArtifactCA []byte
	// StateDir keeps the last verified artifact of each Assignment.
	StateDir string
	// HeartbeatInterval between renewals of the agent's Lease on the hub; 10s when zero.
	// It holds until the hub announces another interval on the Lease
	// (fleetv1.HeartbeatIntervalAnnotation) within the bounds below, and again when
	// the announcement goes or is out of bounds.
	HeartbeatInterval time.Duration
	// MinAnnouncedHeartbeat is the shortest interval announced by the hub that the
	// agent adopts; fleetv1.MinHeartbeatInterval (5s) when zero. Tests lower it; the
	// upper bound is always fleetv1.MaxHeartbeatInterval.
	MinAnnouncedHeartbeat time.Duration
	// ResyncInterval between drift checks of an unchanged Assignment; 5m when zero.
	ResyncInterval time.Duration
	// DisableDriftWatch turns off the watch on applied objects: drift is then found
	// at each resync only (spec.interval or ResyncInterval).
	DisableDriftWatch bool
	// PollInterval between checks while waiting for health or for dependencies; 2s
	// when zero.
	PollInterval time.Duration
	// MetricsAddr and HealthAddr are listen addresses; "0" or empty turns them off.
	MetricsAddr string
	HealthAddr  string
	// MetricsInsecure serves metrics over plain HTTP to anyone (local development and
	// tests); by default they are HTTPS, and a request needs a token the spoke's API
	// server authenticates and allows to get the non-resource URL /metrics.
	MetricsInsecure bool
	// MetricsCertDir holds tls.crt and tls.key for the metrics server; a self-signed
	// certificate when empty.
	MetricsCertDir string
	// Logger for everything the agent logs; controller-runtime's global logger when unset.
	Logger logr.Logger
	// MaxConcurrentReconciles is how many Assignments are applied at once; 4 when zero.
	MaxConcurrentReconciles int
	// Version returns the version this agent reports running (heartbeat, and against
	// an Assignment's spec.agentVersion); version.Version when nil. Tests of agents
	// run in-process set it to stand in for the agent an image would start.
	Version func() string
}
