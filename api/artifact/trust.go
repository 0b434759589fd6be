package artifact

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// KeyID names a public key: the first 16 hex digits of the sha256 of its PKIX DER
// encoding, the bytes `openssl pkey -pubout -outform DER` prints.
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only a key of the wrong length fails to marshal; it cannot verify anything.
		return "invalid"
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])[:16]
}

// Trust bundle keys in the ConfigMap the hub publishes to every cluster namespace.
const (
	// TrustBundleKey holds the bundle JSON exactly as it was signed.
	TrustBundleKey = "bundle.json"
	// TrustSignaturesKey holds a JSON object from key ID to the signature of the
	// bundle's digest by that key.
	TrustSignaturesKey = "signatures.json"
	// TrustKeysKey holds the same public keys as PEM, for people and older agents.
	TrustKeysKey = "keys.pem"
)

// TrustBundle is the set of keys the hub signs with, as the hub publishes it to
// agents. Sequence grows with every change, so an agent can refuse an older bundle
// replayed to bring back a retired key.
type TrustBundle struct {
	Sequence int64     `json:"sequence"`
	IssuedAt time.Time `json:"issuedAt"`
	// Active is the ID of the key new artifacts are signed with.
	Active string `json:"active"`
	// Keys maps key IDs to PEM public keys; every one of them verifies artifacts.
	Keys map[string]string `json:"keys"`
}

// NewTrustBundle describes keys (the active one among them) at a sequence number.
func NewTrustBundle(seq int64, issued time.Time, active string, keys []ed25519.PublicKey) (*TrustBundle, error) {
	b := &TrustBundle{Sequence: seq, IssuedAt: issued.UTC().Truncate(time.Second), Active: active, Keys: map[string]string{}}
	for _, k := range keys {
		p, err := MarshalPublicKeys(k)
		if err != nil {
			return nil, err
		}
		b.Keys[KeyID(k)] = string(p)
	}
	return b, b.check()
}

// PublicKeys returns the bundle's keys ordered by ID, checking that each one is
// filed under its own ID.
func (b *TrustBundle) PublicKeys() ([]ed25519.PublicKey, error) {
	ids := make([]string, 0, len(b.Keys))
	for id := range b.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]ed25519.PublicKey, 0, len(ids))
	for _, id := range ids {
		ks, err := ParsePublicKeys([]byte(b.Keys[id]))
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", id, err)
		}
		if len(ks) != 1 || KeyID(ks[0]) != id {
			return nil, fmt.Errorf("key filed as %s is not that key", id)
		}
		out = append(out, ks[0])
	}
	return out, nil
}

func (b *TrustBundle) check() error {
	if len(b.Keys) == 0 {
		return errors.New("trust bundle has no keys")
	}
	if _, ok := b.Keys[b.Active]; !ok {
		return fmt.Errorf("trust bundle's active key %s is not among its keys", b.Active)
	}
	_, err := b.PublicKeys()
	return err
}

// SignTrustBundle encodes the bundle and signs its digest with each of keys, so that
// an agent trusting any one of them accepts it.
func SignTrustBundle(b *TrustBundle, keys ...ed25519.PrivateKey) (bundle, signatures []byte, err error) {
	if bundle, err = json.Marshal(b); err != nil {
		return nil, nil, err
	}
	d := Digest(bundle)
	sigs := map[string]string{}
	for _, k := range keys {
		sigs[KeyID(k.Public().(ed25519.PublicKey))] = Sign(k, d)
	}
	signatures, err = json.Marshal(sigs)
	return bundle, signatures, err
}

// VerifyTrustBundle decodes a bundle whose signatures include one by a trusted key,
// and returns it with the ID of the key that vouched for it. The bundle's own keys
// never vouch for it: that is the point.
func VerifyTrustBundle(bundle, signatures []byte, trusted []ed25519.PublicKey) (*TrustBundle, string, error) {
	var sigs map[string]string
	if err := json.Unmarshal(signatures, &sigs); err != nil {
		return nil, "", fmt.Errorf("%w: trust bundle signatures are not a JSON object: %v", ErrSignature, err)
	}
	d := Digest(bundle)
	by := ""
	for _, k := range trusted {
		id := KeyID(k)
		if sig, ok := sigs[id]; ok && VerifyDigest(d, sig, []ed25519.PublicKey{k}) == nil {
			by = id
			break
		}
	}
	if by == "" {
		return nil, "", fmt.Errorf("%w: trust bundle is not signed by any key this agent trusts", ErrSignature)
	}
	var b TrustBundle
	if err := json.Unmarshal(bundle, &b); err != nil {
		return nil, "", fmt.Errorf("trust bundle: %w", err)
	}
	if err := b.check(); err != nil {
		return nil, "", err
	}
	return &b, by, nil
}
