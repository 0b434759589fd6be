package registration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultTokenTTL is how long a bootstrap token may wait for its agent.
const DefaultTokenTTL = time.Hour

// ClusterLabel marks the hub objects that belong to one fleet Cluster's registration.
const ClusterLabel = "fleet.flotilla.dev/registration-for"

// BootstrapTokenSecretType is the type of the Secrets holding token hashes, so that
// nothing mistakes them for anything else.
const BootstrapTokenSecretType corev1.SecretType = "fleet.flotilla.dev/bootstrap-token"

// Keys of a bootstrap token Secret on the hub. The token itself is never stored.
const (
	tokenKeyHash       = "sha256"
	tokenKeyExpiration = "expiration"
	tokenKeyCluster    = "cluster"
)

// BootstrapTokenSecretName is the hub Secret (in the system namespace) that holds the
// hash of a cluster's current bootstrap token; one per cluster, so issuing a new
// token invalidates the previous one.
func BootstrapTokenSecretName(cluster string) string { return "flotilla-bootstrap-" + cluster }

// IssueBootstrapToken makes a new single-use token for cluster, valid for ttl, stores
// its sha256 in the system namespace and returns the token in clear, once.
func IssueBootstrapToken(ctx context.Context, c client.Client, systemNamespace, cluster string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	expires := time.Now().Add(ttl).UTC().Truncate(time.Second)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: systemNamespace,
			Name:      BootstrapTokenSecretName(cluster),
			Labels:    map[string]string{ClusterLabel: cluster},
		},
		Type: BootstrapTokenSecretType,
		Data: map[string][]byte{
			tokenKeyHash:       []byte(hashToken(token)),
			tokenKeyExpiration: []byte(expires.Format(time.RFC3339)),
			tokenKeyCluster:    []byte(cluster),
		},
	}
	if err := c.Create(ctx, s); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return "", time.Time{}, fmt.Errorf("store bootstrap token: %w", err)
		}
		// Replacing the Secret, not updating it, gives it a new UID: a registration
		// that read the old one cannot consume the new one.
		if err := c.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return "", time.Time{}, err
		}
		s.ResourceVersion = ""
		if err := c.Create(ctx, s); err != nil {
			return "", time.Time{}, fmt.Errorf("store bootstrap token: %w", err)
		}
	}
	return token, expires, nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
