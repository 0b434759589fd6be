package signing

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// A download grant says "the hub assigned this digest to this cluster". It goes into
// the Assignment's artifact URL (?grant=…), which the Assignment's signature covers,
// and lets any hub replica that holds the keyring authorise the download without an
// API read (hub/artifactauth). It is an HMAC-SHA256, truncated to 128 bits, over a
// versioned message naming the cluster and the digest, keyed by a key derived from a
// signing key. It does not expire: it is valid while the key that made it is in the
// keyring.

// grantKeyLabel is the HKDF info that derives a signing key's grant key: the same
// seed never keys anything else with the same bytes.
const grantKeyLabel = "flotilla.dev/artifact-download-grant/v1"

// grantVersion is the first byte of a grant and the start of the MAC'd message; a
// later format takes another number.
const grantVersion = 1

// grantMACSize is how much of the HMAC a grant keeps: 128 bits.
const grantMACSize = 16

// grantKey derives the grant key of one signing key.
func grantKey(k ed25519.PrivateKey) []byte {
	key, err := hkdf.Key(sha256.New, k.Seed(), nil, grantKeyLabel, sha256.Size)
	if err != nil {
		// hkdf.Key fails only for a length over 255 hash sizes.
		panic(err)
	}
	return key
}

// grantMAC is the truncated MAC of (cluster, digest) under key.
func grantMAC(key []byte, cluster, digest string) []byte {
	m := hmac.New(sha256.New, key)
	// Cluster names and digests hold no NUL byte, so the message splits one way only.
	m.Write([]byte{grantVersion})
	m.Write([]byte("\x00" + cluster + "\x00" + digest))
	return m.Sum(nil)[:grantMACSize]
}

func encodeGrant(mac []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{grantVersion}, mac...))
}

// grantKeys derives the grant key of every key in st, by key ID.
func grantKeys(st *State) map[string][]byte {
	out := make(map[string][]byte, len(st.Keys))
	for id, k := range st.Keys {
		out[id] = grantKey(k)
	}
	return out
}

// Grant is the download grant of digest for cluster under the active key. The same
// (cluster, digest, key) always gives the same grant, so an Assignment that carries
// it is not rewritten until the active key changes.
func (k *Keyring) Grant(cluster, digest string) string {
	k.mu.RLock()
	key := k.grants[k.st.Active]
	k.mu.RUnlock()
	return encodeGrant(grantMAC(key, cluster, digest))
}

// VerifyGrant reports whether grant was made for exactly this cluster and digest by
// any key of the keyring (the active one or one rotated out but still trusted).
func (k *Keyring) VerifyGrant(cluster, digest, grant string) bool {
	b, err := base64.RawURLEncoding.DecodeString(grant)
	if err != nil || len(b) != 1+grantMACSize || b[0] != grantVersion {
		return false
	}
	k.mu.RLock()
	keys := k.grants
	k.mu.RUnlock()
	ok := false
	for _, key := range keys {
		// Every key is tried, so the time taken does not say which one matched.
		if hmac.Equal(grantMAC(key, cluster, digest), b[1:]) {
			ok = true
		}
	}
	return ok
}
