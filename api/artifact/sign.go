package artifact

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrSignature is returned when no trusted key verifies a signature.
var ErrSignature = errors.New("signature does not verify against any trusted key")

// Sign returns the base64 ed25519 signature of the digest string.
func Sign(key ed25519.PrivateKey, digest string) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(digest)))
}

// Verify checks that data has the given digest and that signature is a trusted key's
// signature of that digest.
func Verify(data []byte, digest, signature string, trusted []ed25519.PublicKey) error {
	if got := Digest(data); got != digest {
		return fmt.Errorf("digest mismatch: artifact is %s, assignment says %s", got, digest)
	}
	return VerifyDigest(digest, signature, trusted)
}

// VerifyDigest checks a signature of a digest string against the trusted keys.
func VerifyDigest(digest, signature string, trusted []ed25519.PublicKey) error {
	if len(trusted) == 0 {
		return fmt.Errorf("%w: no trusted keys configured", ErrSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is not base64 ed25519", ErrSignature)
	}
	for _, k := range trusted {
		if ed25519.Verify(k, []byte(digest), sig) {
			return nil
		}
	}
	return ErrSignature
}

// GenerateKey makes a new signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// MarshalPrivateKey encodes a key as PKCS#8 PEM.
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PKCS#8 PEM ed25519 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("signing key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key is %T, not ed25519", k)
	}
	return ed, nil
}

// MarshalPublicKeys encodes keys as concatenated PKIX PEM blocks.
func MarshalPublicKeys(keys ...ed25519.PublicKey) ([]byte, error) {
	var out []byte
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, err
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out, nil
}

// ParsePublicKeys decodes every PEM "PUBLIC KEY" block in data.
func ParsePublicKeys(data []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ed, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("trusted key is %T, not ed25519", k)
		}
		keys = append(keys, ed)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public keys found")
	}
	return keys, nil
}
