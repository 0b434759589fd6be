package credentials

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

// Read returns the data of the Secret namespace/name. reader should read the API
// server directly (mgr.GetAPIReader()), so that the hub neither caches every Secret
// nor watches them; that is also why a missing Secret waits for the next interval
// (Waiting, SecretNotFound): nothing would wake the controller when it appears. Other
// errors are left unclassified, hence transient. An empty Secret gives an empty map,
// not nil, since nil means "no Secret" to Parse.
func Read(ctx context.Context, reader client.Reader, namespace, name string) (map[string][]byte, error) {
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	if err := reader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, outcome.Fail(outcome.Waiting, sourcev1.SecretNotFoundReason, fmt.Errorf("secret %s not found", key))
		}
		return nil, fmt.Errorf("reading secret %s: %w", key, err)
	}
	if secret.Data == nil {
		return map[string][]byte{}, nil
	}
	return secret.Data, nil
}

// Load reads and parses the Secret ref names; no ref gives the Credentials of no
// Secret (which an ssh:// URL refuses).
func Load(ctx context.Context, reader client.Reader, namespace string, ref *meta.LocalObjectReference, o Options) (Credentials, error) {
	if ref == nil {
		return Parse(nil, o)
	}
	data, err := Read(ctx, reader, namespace, ref.Name)
	if err != nil {
		return Credentials{}, err
	}
	c, err := Parse(data, o)
	if err != nil {
		return Credentials{}, fmt.Errorf("secret %s: %w", ref.Name, err)
	}
	return c, nil
}
