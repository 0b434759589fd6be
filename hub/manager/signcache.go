package manager

import (
	"crypto/sha256"
	"encoding/hex"

	"k8s.io/utils/lru"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/signing"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// signatureCacheSize holds the current statements of a large fleet (1,000 clusters ×
// 10 deployments, during a rollout twice that) several times over, in a few MiB.
const signatureCacheSize = 1 << 16

// signatureCache signs each distinct apply statement once per active key. The engine
// asks for every targeted cluster's signature at every reconcile of a deployment, and
// during a rollout a deployment is reconciled again as agents report: ed25519 is
// deterministic, so the answer is the same until the statement or the key changes,
// and both are in the cache key. Building the statement costs a tenth of signing it.
type signatureCache struct {
	keyring *signing.Keyring
	lru     *lru.Cache
}

func newSignatureCache(k *signing.Keyring) *signatureCache {
	return &signatureCache{keyring: k, lru: lru.New(signatureCacheSize)}
}

// Sign is an engine.Signer: it puts the cluster's download grant for the digest into
// the artifact URL (so that any replica's artifact server serves it without reading
// Assignments), then signs the statement, URL included. Both are deterministic for
// one active key.
func (c *signatureCache) Sign(cluster string, a *fleetv1.Assignment) (string, error) {
	a.Spec.Artifact.URL = storage.GrantedURL(a.Spec.Artifact.URL, c.keyring.Grant(cluster, a.Spec.Artifact.Digest))
	st, err := artifact.Statement(cluster, a)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(st)
	key := c.keyring.ActiveID() + "/" + hex.EncodeToString(sum[:])
	if v, ok := c.lru.Get(key); ok {
		return v.(string), nil
	}
	sig, err := c.keyring.SignStatement(cluster, a)
	if err != nil {
		return "", err
	}
	c.lru.Add(key, sig)
	return sig, nil
}
