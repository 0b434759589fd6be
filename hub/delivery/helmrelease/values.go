package helmrelease

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
)

// errValuesNotFound: a valuesFrom object or key that is not optional is missing.
var errValuesNotFound = errors.New("values not found")

// valuesObject is the data of one ConfigMap or Secret valuesFrom names; nil when the
// object does not exist.
type valuesObject map[string][]byte

// readValuesObjects reads every object valuesFrom names. They are read in the
// HelmRelease's own namespace and nowhere else (ValuesReference has no namespace):
// that is what keeps a tenant's HelmRelease from reading another tenant's Secrets.
// They are read uncached, so that the hub does not hold every Secret in memory.
func readValuesObjects(ctx context.Context, r client.Reader, hr *deliveryv1.HelmRelease) (map[string]valuesObject, error) {
	out := map[string]valuesObject{}
	for _, ref := range hr.Spec.ValuesFrom {
		key := ref.Kind + "/" + ref.Name
		if _, ok := out[key]; ok {
			continue
		}
		nn := types.NamespacedName{Namespace: hr.Namespace, Name: ref.Name}
		var data valuesObject
		var err error
		switch ref.Kind {
		case "Secret":
			var s corev1.Secret
			if err = r.Get(ctx, nn, &s); err == nil {
				data = valuesObject(s.Data)
				if data == nil {
					data = valuesObject{}
				}
			}
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err = r.Get(ctx, nn, &cm); err == nil {
				data = valuesObject{}
				for k, v := range cm.BinaryData {
					data[k] = v
				}
				for k, v := range cm.Data {
					data[k] = []byte(v)
				}
			}
		default:
			return nil, fmt.Errorf("valuesFrom kind %q is neither ConfigMap nor Secret", ref.Kind)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		out[key] = data
	}
	return out, nil
}

// mergeValues merges the values of a HelmRelease: each valuesFrom entry in order,
// later ones over earlier ones, then spec.values over all of them. An entry with a
// targetPath puts the key's whole content, as one value, at that path (Helm's --set
// syntax and typing); one without it is YAML values. A missing object or key is
// errValuesNotFound unless the entry is optional. Maps merge deeply; anything else is
// replaced.
func mergeValues(refs []deliveryv1.ValuesReference, objects map[string]valuesObject, inline *apiextensionsv1.JSON) (map[string]any, error) {
	out := map[string]any{}
	for _, ref := range refs {
		key := ref.ValuesKey
		if key == "" {
			key = deliveryv1.DefaultValuesKey
		}
		obj := objects[ref.Kind+"/"+ref.Name]
		if obj == nil {
			if ref.Optional {
				continue
			}
			return nil, fmt.Errorf("%w: %s %s does not exist", errValuesNotFound, ref.Kind, ref.Name)
		}
		data, ok := obj[key]
		if !ok {
			if ref.Optional {
				continue
			}
			return nil, fmt.Errorf("%w: %s %s has no key %s", errValuesNotFound, ref.Kind, ref.Name, key)
		}
		if ref.TargetPath != "" {
			// The content is one value: escape what --set syntax would split on.
			v := strings.TrimSpace(string(data))
			v = strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(v)
			if err := strvals.ParseInto(ref.TargetPath+"="+v, out); err != nil {
				return nil, fmt.Errorf("%s %s key %s at targetPath %s: %w", ref.Kind, ref.Name, key, ref.TargetPath, err)
			}
			continue
		}
		vals, err := chartutil.ReadValues(data)
		if err != nil {
			return nil, fmt.Errorf("%s %s key %s is not YAML values: %w", ref.Kind, ref.Name, key, err)
		}
		out = mergeMaps(out, vals)
	}
	if inline != nil && len(inline.Raw) > 0 {
		var vals map[string]any
		if err := yaml.Unmarshal(inline.Raw, &vals); err != nil {
			return nil, fmt.Errorf("spec.values: %w", err)
		}
		out = mergeMaps(out, vals)
	}
	return out, nil
}

// mergeMaps merges b over a, deeply where both hold a map at the same key, and
// returns a new map; neither argument is changed.
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// valuesYAML is the merged values as the artifact's values.yaml, with keys sorted, so
// that equal values give equal bytes, and its checksum.
func valuesYAML(vals map[string]any) ([]byte, string, error) {
	data, err := yaml.Marshal(vals)
	if err != nil {
		return nil, "", err
	}
	return data, fmt.Sprintf("sha256:%x", sha256.Sum256(data)), nil
}
