package signing

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Load reads the Secret in ns, creating it with a new key on first start and
// bringing an older or hand-edited one into the current format.
func Load(ctx context.Context, c client.Client, ns string) (*State, error) {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	var st *State
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var s corev1.Secret
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: SecretName}, &s)
		if apierrors.IsNotFound(err) {
			key, err := artifact.GenerateKey()
			if err != nil {
				return err
			}
			st = &State{Keys: map[string]ed25519.PrivateKey{keyID(key): key}, Active: keyID(key)}
			s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: SecretName}}
			if _, err := normalize(&s, st, time.Now()); err != nil {
				return err
			}
			err = c.Create(ctx, &s)
			if apierrors.IsAlreadyExists(err) {
				// Another hub replica won the race; read its key instead.
				return apierrors.NewConflict(corev1.Resource("secrets"), SecretName, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if st, err = ParseSecret(&s); err != nil {
			return err
		}
		changed, err := normalize(&s, st, time.Now())
		if err != nil || !changed {
			return err
		}
		return c.Update(ctx, &s)
	})
	return st, err
}

func keyID(k ed25519.PrivateKey) string { return artifact.KeyID(k.Public().(ed25519.PublicKey)) }

// change applies fn to the keys in the Secret and writes it back, moving the
// sequence on; a concurrent writer makes it start over.
func change(ctx context.Context, c client.Client, ns string, fn func(*State) error) (*State, error) {
	var st *State
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: SecretName}, &s); err != nil {
			return err
		}
		var err error
		if st, err = ParseSecret(&s); err != nil {
			return err
		}
		before := map[string]bool{}
		for id := range st.Keys {
			before[id] = true
		}
		if err := fn(st); err != nil {
			return err
		}
		for id := range before {
			if _, ok := st.Keys[id]; !ok {
				delete(s.Data, keyName(id))
			}
		}
		if _, err := normalize(&s, st, time.Now()); err != nil {
			return err
		}
		return c.Update(ctx, &s)
	})
	return st, err
}

// Rotate adds a new key and makes it the active one. The old keys stay trusted, so
// artifacts signed before still verify, until they are retired.
func Rotate(ctx context.Context, c client.Client, ns string) (string, error) {
	key, err := artifact.GenerateKey()
	if err != nil {
		return "", err
	}
	id := keyID(key)
	_, err = change(ctx, c, ns, func(st *State) error {
		st.Keys[id] = key
		st.Active = id
		return nil
	})
	return id, err
}

// Retire removes a key that no longer signs: agents stop trusting it once they get
// the next trust bundle, and whatever it alone signed stops verifying.
func Retire(ctx context.Context, c client.Client, ns, id string) error {
	_, err := change(ctx, c, ns, func(st *State) error {
		if _, ok := st.Keys[id]; !ok {
			return fmt.Errorf("%w: %s (keys: %v)", ErrUnknownKey, id, st.IDs())
		}
		if len(st.Keys) == 1 {
			return ErrLastKey
		}
		if id == st.Active {
			return ErrActiveKey
		}
		delete(st.Keys, id)
		return nil
	})
	return err
}

// Read returns the keys in the Secret without changing it.
func Read(ctx context.Context, c client.Reader, ns string) (*State, error) {
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: SecretName}, &s); err != nil {
		return nil, err
	}
	return ParseSecret(&s)
}

// SignedOnlyBy lists (as namespace/name) the Assignments whose signature verifies with
// the key id and with no other key in st: retiring id makes them fail until the hub
// signs them again.
func SignedOnlyBy(ctx context.Context, c client.Reader, st *State, id string) ([]string, error) {
	key, ok := st.Keys[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, id)
	}
	var others []ed25519.PublicKey
	for other, k := range st.Keys {
		if other != id {
			others = append(others, k.Public().(ed25519.PublicKey))
		}
	}
	var list fleetv1.AssignmentList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []string
	for _, a := range list.Items {
		cluster := a.Labels[fleetv1.ClusterLabel]
		if artifact.VerifyStatement(cluster, &a, []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}) != nil {
			continue
		}
		if len(others) > 0 && artifact.VerifyStatement(cluster, &a, others) == nil {
			continue
		}
		out = append(out, a.Namespace+"/"+a.Name)
	}
	return out, nil
}
