package helm

import (
	"context"
	"fmt"
	"sort"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/spoke/drift"
)

// Drift is one object of a release that differed from what Helm rendered.
type Drift struct {
	// Object is Kind/namespace/name.
	Object string
	// Fields says what differed (".data.greeting"), or "deleted".
	Fields string
}

// DriftFieldManager writes the corrections of drift, and names the server-side
// apply dry runs that find it: a manager of its own, so that Helm's own records of
// what it wrote are never touched.
const DriftFieldManager = "flotilla-helm-drift"

// manifestObjects parses a release's manifest, in Helm's install order.
func manifestObjects(manifest string) []*unstructured.Unstructured {
	docs := releaseutil.SplitManifests(manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var out []*unstructured.Unstructured
	for _, k := range keys {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(docs[k]), &u.Object); err != nil || u.Object == nil || u.GetKind() == "" {
			continue
		}
		out = append(out, u)
	}
	return out
}

// drift compares each object of the release's manifest with the spoke: the live
// object against the server's dry run of applying the rendered one (so defaults and
// fields others own compare equal), as the release's identity. Unless warnOnly, a
// drifted or deleted object is applied again, with force.
func (ru *run) drift(ctx context.Context, rel *release.Release, warnOnly bool) ([]Drift, error) {
	c := ru.id.client
	var out []Drift
	for _, u := range manifestObjects(rel.Manifest) {
		if err := ru.namespace(u); err != nil {
			return out, err
		}
		ref := fmt.Sprintf("%s/%s", u.GetKind(), u.GetName())
		if ns := u.GetNamespace(); ns != "" {
			ref = fmt.Sprintf("%s/%s/%s", u.GetKind(), ns, u.GetName())
		}
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(u.GroupVersionKind())
		err := c.Get(ctx, client.ObjectKeyFromObject(u), live)
		var d Drift
		switch {
		case apierrors.IsNotFound(err):
			d = Drift{Object: ref, Fields: "deleted"}
		case err != nil:
			return out, fmt.Errorf("reading %s: %w", ref, err)
		default:
			dry := u.DeepCopy()
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry),
				client.FieldOwner(DriftFieldManager), client.ForceOwnership, client.DryRunAll); err != nil {
				return out, fmt.Errorf("dry run of %s: %w", ref, err)
			}
			paths := drift.Diff(live, dry)
			if len(paths) == 0 {
				continue
			}
			d = Drift{Object: ref, Fields: drift.Describe(paths)}
		}
		out = append(out, d)
		if warnOnly {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()),
			client.FieldOwner(DriftFieldManager), client.ForceOwnership); err != nil {
			return out, fmt.Errorf("correcting %s: %w", ref, err)
		}
	}
	return out, nil
}

// namespace puts a namespaced object without a namespace into the release's, as Helm
// did when it created it.
func (ru *run) namespace(u *unstructured.Unstructured) error {
	if u.GetNamespace() != "" {
		return nil
	}
	m, err := ru.id.mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
	if err != nil {
		return fmt.Errorf("mapping %s: %w", u.GroupVersionKind(), err)
	}
	if m.Scope.Name() == apimeta.RESTScopeNameNamespace {
		u.SetNamespace(ru.req.Namespace)
	}
	return nil
}
