package postbuild

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// Variables gathers the variables of a postBuild: first the ConfigMaps and Secrets of
// substituteFrom, in order, read from namespace through c (the Assignment's
// impersonated identity, so a tenant reads only what it may read), then
// spec.postBuild.substitute, which wins. A missing object is an error unless its
// reference is optional.
func Variables(ctx context.Context, c client.Reader, namespace string, pb *meta.PostBuild) (map[string]string, error) {
	vars := map[string]string{}
	if pb == nil {
		return vars, nil
	}
	for _, ref := range pb.SubstituteFrom {
		key := types.NamespacedName{Namespace: namespace, Name: ref.Name}
		var data map[string]string
		switch ref.Kind {
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := c.Get(ctx, key, &cm); err != nil {
				if apierrors.IsNotFound(err) && ref.Optional {
					continue
				}
				return nil, fmt.Errorf("substituteFrom ConfigMap %s: %w", key, err)
			}
			data = cm.Data
		case "Secret":
			var s corev1.Secret
			if err := c.Get(ctx, key, &s); err != nil {
				if apierrors.IsNotFound(err) && ref.Optional {
					continue
				}
				return nil, fmt.Errorf("substituteFrom Secret %s: %w", key, err)
			}
			data = make(map[string]string, len(s.Data)+len(s.StringData))
			for k, v := range s.Data {
				data[k] = string(v)
			}
		default:
			return nil, fmt.Errorf("substituteFrom: kind %q is neither ConfigMap nor Secret", ref.Kind)
		}
		for k, v := range data {
			vars[k] = v
		}
	}
	for k, v := range pb.Substitute {
		vars[k] = v
	}
	if err := ValidateNames(vars); err != nil {
		return nil, err
	}
	return vars, nil
}
