package signing

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"

	corev1 "k8s.io/api/core/v1"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

// Names of the Secret that holds the keys and of the ConfigMaps that publish them.
const (
	// SecretName (in the hub's system namespace) holds one PKCS#8 PEM private key per
	// data key "<keyID>.pem".
	SecretName = "flotilla-signing-key"
	// PublishedLabel marks the trust ConfigMaps the hub writes and watches.
	PublishedLabel = "flotilla.dev/trust-bundle"
	// legacyKey is where hubs before rotation kept their single key; it is moved
	// to "<keyID>.pem" on start.
	legacyKey = "private.pem"
)

// Annotations on the Secret.
const (
	// ActiveKeyAnnotation names the key that signs new artifacts.
	ActiveKeyAnnotation = "flotilla.dev/active-key"
	// SequenceAnnotation counts the changes of the key set; agents refuse a bundle
	// whose sequence is lower than the one they hold.
	SequenceAnnotation = "flotilla.dev/trust-sequence"
	// IssuedAtAnnotation is when the sequence last moved, so that the bundle is a pure
	// function of the Secret and publishing it again changes nothing.
	IssuedAtAnnotation = "flotilla.dev/trust-issued-at"
	// fingerprintAnnotation says which key set the sequence was counted for; a Secret
	// edited by hand no longer matches it and gets the next sequence number.
	fingerprintAnnotation = "flotilla.dev/trust-fingerprint"
)

// State is one reading of the Secret: the keys, the active one and the sequence.
type State struct {
	Keys     map[string]ed25519.PrivateKey
	Active   string
	Sequence int64
	IssuedAt time.Time
}

// IDs lists the key IDs in order.
func (s *State) IDs() []string {
	ids := make([]string, 0, len(s.Keys))
	for id := range s.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// fingerprint is what the sequence number counts changes of.
func (s *State) fingerprint() string {
	sum := sha256.Sum256([]byte(s.Active + "|" + strings.Join(s.IDs(), ",")))
	return hex.EncodeToString(sum[:])[:16]
}

func keyName(id string) string { return id + ".pem" }

// ParseSecret reads the keys out of the Secret. It accepts the single "private.pem"
// of older hubs, and a Secret without an active annotation when it holds one key.
func ParseSecret(s *corev1.Secret) (*State, error) {
	st := &State{Keys: map[string]ed25519.PrivateKey{}}
	for name, data := range s.Data {
		id, ok := strings.CutSuffix(name, ".pem")
		if !ok {
			continue
		}
		key, err := artifact.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		got := artifact.KeyID(key.Public().(ed25519.PublicKey))
		if name != legacyKey && got != id {
			// A misfiled key would make agents and `flotilla keys` disagree on names.
			return nil, fmt.Errorf("key %s is the key %s; its data key must be %s", name, got, keyName(got))
		}
		st.Keys[got] = key
	}
	if len(st.Keys) == 0 {
		return nil, fmt.Errorf("secret %s/%s holds no keys", s.Namespace, s.Name)
	}
	st.Active = s.Annotations[ActiveKeyAnnotation]
	if st.Active == "" && len(st.Keys) == 1 {
		st.Active = st.IDs()[0]
	}
	if _, ok := st.Keys[st.Active]; !ok {
		return nil, fmt.Errorf("active key %q (annotation %s) is not in the secret", st.Active, ActiveKeyAnnotation)
	}
	if v := s.Annotations[SequenceAnnotation]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("annotation %s=%q is not a sequence number", SequenceAnnotation, v)
		}
		st.Sequence = n
	}
	if v := s.Annotations[IssuedAtAnnotation]; v != "" {
		st.IssuedAt, _ = time.Parse(time.RFC3339, v)
	}
	return st, nil
}

// normalize writes st back into s in the current format, moving the sequence on when
// the key set is not the one it was counted for. It reports whether s changed.
func normalize(s *corev1.Secret, st *State, now time.Time) (bool, error) {
	changed := false
	if _, ok := s.Data[legacyKey]; ok {
		delete(s.Data, legacyKey)
		changed = true
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for id, key := range st.Keys {
		if _, ok := s.Data[keyName(id)]; ok {
			continue
		}
		pemKey, err := artifact.MarshalPrivateKey(key)
		if err != nil {
			return false, err
		}
		s.Data[keyName(id)] = pemKey
		changed = true
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	set := func(k, v string) {
		if s.Annotations[k] != v {
			s.Annotations[k] = v
			changed = true
		}
	}
	set(ActiveKeyAnnotation, st.Active)
	if s.Annotations[fingerprintAnnotation] != st.fingerprint() || st.Sequence == 0 {
		st.Sequence++
		st.IssuedAt = now.UTC().Truncate(time.Second)
		set(fingerprintAnnotation, st.fingerprint())
	}
	set(SequenceAnnotation, strconv.FormatInt(st.Sequence, 10))
	set(IssuedAtAnnotation, st.IssuedAt.Format(time.RFC3339))
	return changed, nil
}

// Keyring is the hub's current set of keys. It is safe for concurrent use; the
// controller replaces its contents when the Secret changes.
type Keyring struct {
	mu sync.RWMutex
	st *State
	// grants holds each key's download grant key (grant.go), by key ID.
	grants map[string][]byte
}

// NewKeyring holds st.
func NewKeyring(st *State) *Keyring { return &Keyring{st: st, grants: grantKeys(st)} }

// Set replaces the keys.
func (k *Keyring) Set(st *State) {
	grants := grantKeys(st)
	k.mu.Lock()
	k.st, k.grants = st, grants
	k.mu.Unlock()
}

func (k *Keyring) state() *State {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.st
}

// SignStatement signs an Assignment's apply statement for cluster with the active
// key. ed25519 is deterministic, so signing the same statement again gives the same
// signature and rewrites nothing.
func (k *Keyring) SignStatement(cluster string, a *fleetv1.Assignment) (string, error) {
	st := k.state()
	return artifact.SignStatement(st.Keys[st.Active], cluster, a)
}

// ActiveID is the ID of the key that signs.
func (k *Keyring) ActiveID() string { return k.state().Active }

// Sequence is the number of the current key set.
func (k *Keyring) Sequence() int64 { return k.state().Sequence }

// PublicKeys are every key agents should trust, the active one first.
func (k *Keyring) PublicKeys() []ed25519.PublicKey {
	st := k.state()
	out := []ed25519.PublicKey{st.Keys[st.Active].Public().(ed25519.PublicKey)}
	for _, id := range st.IDs() {
		if id != st.Active {
			out = append(out, st.Keys[id].Public().(ed25519.PublicKey))
		}
	}
	return out
}

// TrustData is the ConfigMap data that publishes the key set: the bundle signed by
// every key in it, so that an agent that trusts only an old key still accepts the
// bundle that introduces the new one.
func (k *Keyring) TrustData() (map[string]string, error) {
	st := k.state()
	pubs := k.PublicKeys()
	b, err := artifact.NewTrustBundle(st.Sequence, st.IssuedAt, st.Active, pubs)
	if err != nil {
		return nil, err
	}
	privs := make([]ed25519.PrivateKey, 0, len(st.Keys))
	for _, id := range st.IDs() {
		privs = append(privs, st.Keys[id])
	}
	bundle, sigs, err := artifact.SignTrustBundle(b, privs...)
	if err != nil {
		return nil, err
	}
	pemKeys, err := artifact.MarshalPublicKeys(pubs...)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		artifact.TrustBundleKey:     string(bundle),
		artifact.TrustSignaturesKey: string(sigs),
		artifact.TrustKeysKey:       string(pemKeys),
	}, nil
}

// Errors of the key operations, for the CLI to tell apart.
var (
	ErrActiveKey  = errors.New("the active key cannot be retired; rotate first")
	ErrUnknownKey = errors.New("no such key")
	ErrLastKey    = errors.New("the last key cannot be retired")
)
