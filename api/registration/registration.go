package registration

import (
	"fmt"
	"strings"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Path is where the hub serves registration, on the artifact server's listener.
const Path = "/register"

// AgentServiceAccount is the name of the ServiceAccount (and of its Role and
// RoleBinding) that an agent's hub credential belongs to, in its cluster's hub namespace.
const AgentServiceAccount = "flotilla-agent"

// Spoke-side names: the install manifests create the bootstrap Secret, the agent
// writes the credential Secret after registering.
const (
	SpokeNamespace       = fleetv1.SystemNamespace
	BootstrapSecretName  = "flotilla-agent-bootstrap"
	CredentialSecretName = "flotilla-agent-hub"
)

// Keys of the bootstrap Secret on the spoke.
const (
	BootstrapKeyCluster         = "cluster"
	BootstrapKeyToken           = "token"
	BootstrapKeyRegistrationURL = "registrationURL"
	BootstrapKeyHubServer       = "hubServer"
	BootstrapKeyHubCA           = "hubCA.crt"
	// BootstrapKeyRegistrationCA verifies the registration endpoint when it is HTTPS.
	BootstrapKeyRegistrationCA = "registrationCA.crt"
)

// Keys of the credential Secret on the spoke.
const (
	CredentialKeyCluster     = "cluster"
	CredentialKeyNamespace   = "namespace"
	CredentialKeyServer      = "server"
	CredentialKeyCA          = "ca.crt"
	CredentialKeyToken       = "token"
	CredentialKeyTrustedKeys = "trusted-keys.pem"
	CredentialKeyExpiration  = "expiration"
	// CredentialKeyArtifactCA verifies the hub's artifact server (HTTPS).
	CredentialKeyArtifactCA = "artifactCA.crt"
	// CredentialKeyArtifactURL is the artifact server's base URL.
	CredentialKeyArtifactURL = "artifactURL"
)

// Request is what an agent POSTs to Path.
type Request struct {
	// Cluster is the name of the fleet Cluster the bootstrap token was issued for.
	Cluster string `json:"cluster"`
	// Token is the bootstrap token, in clear: the hub keeps only its hash.
	Token string `json:"token"`
}

// Response is the hub's answer to a successful registration.
type Response struct {
	Cluster string `json:"cluster"`
	// Namespace is the cluster's hub namespace, the only one the credential reaches.
	Namespace string `json:"namespace"`
	// Server and CAData reach the hub's API server.
	Server string `json:"server"`
	CAData []byte `json:"caData,omitempty"`
	// Token is the agent's long-lived hub credential (a ServiceAccount token).
	Token string `json:"token"`
	// ExpirationTimestamp is when Token stops working, RFC 3339.
	ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
	// TrustedKeys are the PEM public keys that sign the hub's artifacts.
	TrustedKeys string `json:"trustedKeys"`
	// ArtifactCA is the PEM CA certificate that verifies the hub's artifact server.
	ArtifactCA string `json:"artifactCA,omitempty"`
	// ArtifactURL is the artifact server's base URL: the agent downloads from there
	// only, and sends its credential nowhere else.
	ArtifactURL string `json:"artifactURL,omitempty"`
}

// Error is the body of a refused registration.
type Error struct {
	Message string `json:"message"`
}

// ServiceAccountUsername is the Kubernetes user name of a cluster's agent credential.
func ServiceAccountUsername(cluster string) string {
	return "system:serviceaccount:" + fleetv1.ClusterNamespacePrefix + cluster + ":" + AgentServiceAccount
}

// ClusterFromUsername is the inverse of ServiceAccountUsername: the cluster an agent
// credential belongs to, or an error for any other user.
func ClusterFromUsername(user string) (string, error) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:"+fleetv1.ClusterNamespacePrefix)
	if !ok {
		return "", fmt.Errorf("%q is not a Flotilla agent", user)
	}
	cluster, ok := strings.CutSuffix(rest, ":"+AgentServiceAccount)
	if !ok || cluster == "" || strings.Contains(cluster, ":") {
		return "", fmt.Errorf("%q is not a Flotilla agent", user)
	}
	return cluster, nil
}
