package fetch

import (
	"context"
	"crypto/ed25519"
	"sync/atomic"
	"testing"
	"time"
)

// TestKeysAreReadAtEachFetch: a key retired while the agent runs stops verifying,
// even for an artifact already in the cache.
func TestKeysAreReadAtEachFetch(t *testing.T) {
	f := newFixture(t)
	var current atomic.Value
	current.Store(f.keys)
	fe, err := New(Options{Cluster: testCluster, Dir: t.TempDir(), Keys: func() []ed25519.PublicKey { return current.Load().([]ed25519.PublicKey) },
		RetryMax: -1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fe.Fetch(context.Background(), f.art); err != nil {
		t.Fatal(err)
	}
	current.Store([]ed25519.PublicKey{})
	if _, err := fe.Fetch(context.Background(), f.art); !IsVerificationError(err) {
		t.Fatalf("cached artifact of a retired key: want a verification error, got %v", err)
	}
}
