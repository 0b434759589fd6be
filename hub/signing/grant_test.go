package signing

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

var (
	grantDigestA = "sha256:" + strings.Repeat("a", 64)
	grantDigestB = "sha256:" + strings.Repeat("b", 64)
)

func newTestKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	k, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return artifact.KeyID(k.Public().(ed25519.PublicKey)), k
}

func stateOf(active string, keys map[string]ed25519.PrivateKey) *State {
	return &State{Keys: keys, Active: active, Sequence: 1}
}

func TestGrant(t *testing.T) {
	idA, keyA := newTestKey(t)
	idB, keyB := newTestKey(t)
	kr := NewKeyring(stateOf(idA, map[string]ed25519.PrivateKey{idA: keyA}))
	other := NewKeyring(stateOf(idB, map[string]ed25519.PrivateKey{idB: keyB}))

	g := kr.Grant("eu", grantDigestA)
	if again := kr.Grant("eu", grantDigestA); again != g {
		t.Fatalf("the same cluster, digest and key gave two grants: %s, %s", g, again)
	}
	if b, err := base64.RawURLEncoding.DecodeString(g); err != nil || len(b) != 17 || b[0] != grantVersion {
		t.Fatalf("grant %q: want base64url of the version byte and 128 bits (%v)", g, err)
	}
	if kr.Grant("us", grantDigestA) == g || kr.Grant("eu", grantDigestB) == g || other.Grant("eu", grantDigestA) == g {
		t.Fatal("a grant does not depend on the cluster, the digest and the key")
	}
	// A grant key is no signing key: the grant reveals nothing a signature would check.
	if string(grantKey(keyA)) == string(keyA.Seed()) {
		t.Fatal("the grant key is the signing seed itself")
	}

	raw := mustDecode(t, g)
	raw[len(raw)-1] ^= 1 // one bit of the MAC
	tampered := base64.RawURLEncoding.EncodeToString(raw)
	for _, tc := range []struct {
		name            string
		kr              *Keyring
		cluster, digest string
		grant           string
		want            bool
	}{
		{"as made", kr, "eu", grantDigestA, g, true},
		{"another cluster", kr, "us", grantDigestA, g, false},
		{"another digest", kr, "eu", grantDigestB, g, false},
		{"tampered", kr, "eu", grantDigestA, tampered, false},
		{"truncated", kr, "eu", grantDigestA, g[:len(g)-2], false},
		{"another version", kr, "eu", grantDigestA, base64.RawURLEncoding.EncodeToString(append([]byte{2}, mustDecode(t, g)[1:]...)), false},
		{"not base64url", kr, "eu", grantDigestA, "!!" + g[2:], false},
		{"empty", kr, "eu", grantDigestA, "", false},
		{"another hub's key", other, "eu", grantDigestA, g, false},
	} {
		if got := tc.kr.VerifyGrant(tc.cluster, tc.digest, tc.grant); got != tc.want {
			t.Errorf("%s: VerifyGrant = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestGrantAcrossRotation: after a rotation new grants come from the new key, the old
// key's grants stay valid while it is trusted, and stop once it is retired.
func TestGrantAcrossRotation(t *testing.T) {
	idA, keyA := newTestKey(t)
	idB, keyB := newTestKey(t)
	kr := NewKeyring(stateOf(idA, map[string]ed25519.PrivateKey{idA: keyA}))
	old := kr.Grant("eu", grantDigestA)

	kr.Set(stateOf(idB, map[string]ed25519.PrivateKey{idA: keyA, idB: keyB}))
	rotated := kr.Grant("eu", grantDigestA)
	if rotated == old {
		t.Fatal("the grant did not change with the active key")
	}
	if !kr.VerifyGrant("eu", grantDigestA, old) || !kr.VerifyGrant("eu", grantDigestA, rotated) {
		t.Fatal("after a rotation the old key's grant or the new one is refused while both keys are trusted")
	}
	if kr.VerifyGrant("us", grantDigestA, old) {
		t.Fatal("the old key's grant verifies for another cluster")
	}

	kr.Set(stateOf(idB, map[string]ed25519.PrivateKey{idB: keyB}))
	if kr.VerifyGrant("eu", grantDigestA, old) {
		t.Fatal("a grant of a retired key still verifies")
	}
	if !kr.VerifyGrant("eu", grantDigestA, rotated) {
		t.Fatal("the active key's grant is refused")
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkGrant: what the signer adds per Assignment and the guard per download.
func BenchmarkGrant(b *testing.B) {
	id, key, _ := func() (string, ed25519.PrivateKey, error) {
		k, err := artifact.GenerateKey()
		return artifact.KeyID(k.Public().(ed25519.PublicKey)), k, err
	}()
	kr := NewKeyring(stateOf(id, map[string]ed25519.PrivateKey{id: key}))
	g := kr.Grant("eu", grantDigestA)
	b.Run("make", func(b *testing.B) {
		for b.Loop() {
			kr.Grant("eu", grantDigestA)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			kr.VerifyGrant("eu", grantDigestA, g)
		}
	})
}
