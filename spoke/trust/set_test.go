package trust

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// bundle is what the hub publishes for keys (the first active) at seq, signed by signers.
func bundle(t *testing.T, seq int64, keys []ed25519.PrivateKey, signers ...ed25519.PrivateKey) ([]byte, []byte) {
	t.Helper()
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		pubs = append(pubs, pub(k))
	}
	b, err := artifact.NewTrustBundle(seq, time.Now(), artifact.KeyID(pubs[0]), pubs)
	if err != nil {
		t.Fatal(err)
	}
	data, sigs, err := artifact.SignTrustBundle(b, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return data, sigs
}

func TestRotationReachesTheAgentThroughTrustedKeysOnly(t *testing.T) {
	k1, _ := artifact.GenerateKey()
	k2, _ := artifact.GenerateKey()
	rogue, _ := artifact.GenerateKey()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, []ed25519.PublicKey{pub(k1)})
	if err != nil {
		t.Fatal(err)
	}

	// A bundle signed only by a key the agent does not trust, even one listing itself.
	if _, err := s.Accept(bundle(t, 5, []ed25519.PrivateKey{rogue, k1}, rogue)); !errors.Is(err, artifact.ErrSignature) {
		t.Fatalf("self-signed bundle: %v", err)
	}
	// Signatures swapped between bundles do not carry over.
	_, sigs := bundle(t, 2, []ed25519.PrivateKey{k2, k1}, k1)
	forged, _ := bundle(t, 2, []ed25519.PrivateKey{rogue, k1}, rogue)
	if _, err := s.Accept(forged, sigs); !errors.Is(err, artifact.ErrSignature) {
		t.Fatalf("bundle with another bundle's signature: %v", err)
	}

	// Rotation: k2 active, k1 still trusted, signed by both.
	changed, err := s.Accept(bundle(t, 2, []ed25519.PrivateKey{k2, k1}, k2, k1))
	if err != nil || !changed || len(s.Keys()) != 2 || s.Sequence() != 2 {
		t.Fatalf("rotation bundle: changed %v err %v keys %v seq %d", changed, err, s.IDs(), s.Sequence())
	}
	if changed, err := s.Accept(bundle(t, 2, []ed25519.PrivateKey{k2, k1}, k2, k1)); changed || err != nil {
		t.Fatalf("same bundle again: changed %v err %v", changed, err)
	}

	// Retirement of k1, signed by k2 alone, which the agent now trusts.
	if _, err := s.Accept(bundle(t, 3, []ed25519.PrivateKey{k2}, k2)); err != nil {
		t.Fatal(err)
	}
	if err := artifact.VerifyDigest("sha256:x", artifact.Sign(k1, "sha256:x"), s.Keys()); err == nil {
		t.Fatal("retired key still verifies")
	}

	// Replaying the older bundle that still listed k1 is refused.
	if _, err := s.Accept(bundle(t, 2, []ed25519.PrivateKey{k2, k1}, k2, k1)); !errors.Is(err, ErrStale) {
		t.Fatalf("replayed bundle: %v", err)
	}

	// A restart keeps the accepted set, over the keys from registration.
	again, err := Open(path, []ed25519.PublicKey{pub(k1)})
	if err != nil {
		t.Fatal(err)
	}
	if again.Sequence() != 3 || len(again.Keys()) != 1 || artifact.KeyID(again.Keys()[0]) != artifact.KeyID(pub(k2)) {
		t.Fatalf("after restart: keys %v seq %d", again.IDs(), again.Sequence())
	}

	// Registered again with other keys: the kept set belongs to the old registration.
	k3, _ := artifact.GenerateKey()
	fresh, err := Open(path, []ed25519.PublicKey{pub(k3)})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Sequence() != 0 || len(fresh.Keys()) != 1 || artifact.KeyID(fresh.Keys()[0]) != artifact.KeyID(pub(k3)) {
		t.Fatalf("after re-registration: keys %v seq %d", fresh.IDs(), fresh.Sequence())
	}
}

func TestAgentThatMissedTheRotationCannotBeTalkedIntoTheNewKey(t *testing.T) {
	k1, _ := artifact.GenerateKey()
	k2, _ := artifact.GenerateKey()
	s, _ := Open("", []ed25519.PublicKey{pub(k1)})
	// k1 already retired: the bundle is signed by k2 alone, which this agent never learnt.
	if _, err := s.Accept(bundle(t, 3, []ed25519.PrivateKey{k2}, k2)); !errors.Is(err, artifact.ErrSignature) {
		t.Fatalf("want ErrSignature, got %v", err)
	}
	if len(s.Keys()) != 1 || artifact.KeyID(s.Keys()[0]) != artifact.KeyID(pub(k1)) {
		t.Fatal("keys changed")
	}
}
