package trust

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

// FileName is the file in the agent's state folder that keeps the key set.
const FileName = "trust.json"

// ErrStale says a bundle is older than the key set the agent holds; accepting it
// could bring back a retired key.
var ErrStale = errors.New("trust bundle is older than the keys this agent holds")

// Set is the agent's current trusted keys. It is safe for concurrent use.
type Set struct {
	path string

	mu       sync.RWMutex
	keys     []ed25519.PublicKey
	sequence int64
	origin   string
}

type persisted struct {
	Sequence int64  `json:"sequence"`
	Keys     string `json:"keys"` // PEM
	// Origin names the registration keys the set grew from.
	Origin string `json:"origin"`
}

// origin names a set of registration keys, in any order.
func origin(keys []ed25519.PublicKey) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = artifact.KeyID(k)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// Open returns the key set kept at path, or, when there is none yet, initial: the
// keys handed over at registration, at sequence 0. A kept set that grew from the
// same initial keys wins, since it may have retired a key initial still lists; one
// that grew from other keys belongs to an earlier registration (or another hub) and
// is replaced. With no initial keys, the kept set is used as it is.
func Open(path string, initial []ed25519.PublicKey) (*Set, error) {
	s := &Set{path: path, keys: initial, origin: origin(initial)}
	if path == "" {
		return s, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("trusted keys in %s: %w", path, err)
	}
	keys, err := artifact.ParsePublicKeys([]byte(p.Keys))
	if err != nil {
		return nil, fmt.Errorf("trusted keys in %s: %w", path, err)
	}
	if len(initial) > 0 && p.Origin != s.origin {
		return s, nil
	}
	s.keys, s.sequence, s.origin = keys, p.Sequence, p.Origin
	return s, nil
}

// Keys returns the keys trusted now.
func (s *Set) Keys() []ed25519.PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys
}

// Sequence is the sequence number of the bundle the keys came from, 0 for the keys
// from registration.
func (s *Set) Sequence() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sequence
}

// IDs lists the key IDs trusted now.
func (s *Set) IDs() []string {
	keys := s.Keys()
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = artifact.KeyID(k)
	}
	return ids
}

// Accept takes up the keys of a bundle signed by a key trusted now, when its sequence
// is newer, and keeps them on disk before using them. It reports whether the set
// changed; a bundle signed by no trusted key is an error wrapping
// artifact.ErrSignature, an older one ErrStale.
func (s *Set) Accept(bundle, signatures []byte) (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, by, err := artifact.VerifyTrustBundle(bundle, signatures, s.keys)
	if err != nil {
		return false, err
	}
	if b.Sequence < s.sequence {
		return false, fmt.Errorf("%w: bundle %d (signed by %s), held %d", ErrStale, b.Sequence, by, s.sequence)
	}
	if b.Sequence == s.sequence {
		return false, nil
	}
	keys, err := b.PublicKeys()
	if err != nil {
		return false, err
	}
	if err := s.save(b.Sequence, keys); err != nil {
		// Not taken up: after a restart the agent would fall back to the older set.
		return false, err
	}
	s.keys, s.sequence = keys, b.Sequence
	return true, nil
}

func (s *Set) save(seq int64, keys []ed25519.PublicKey) error {
	if s.path == "" {
		return nil
	}
	pemKeys, err := artifact.MarshalPublicKeys(keys...)
	if err != nil {
		return err
	}
	data, err := json.Marshal(persisted{Sequence: seq, Keys: string(pemKeys), Origin: s.origin})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("keeping trusted keys: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".trust-*")
	if err != nil {
		return fmt.Errorf("keeping trusted keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("keeping trusted keys: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keeping trusted keys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keeping trusted keys: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("keeping trusted keys: %w", err)
	}
	return nil
}
