package helm

import (
	"context"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// crdTimeout bounds the wait for a CRD to be established.
const crdTimeout = time.Minute

// crds does what the CRD policy asks of the chart's crds/ folder before an install or
// upgrade, where Helm's own handling is not that policy: Helm creates missing CRDs at
// install (Create) and never touches them at upgrade. CreateReplace creates the
// missing ones and replaces existing ones; Create at upgrade creates the missing ones.
func (ru *run) crds(ctx context.Context, policy string, install bool) error {
	if policy == meta.CRDsSkip || policy == "" || (install && policy == meta.CRDsCreate) {
		return nil
	}
	files := ru.chart.CRDObjects()
	if len(files) == 0 {
		return nil
	}
	c := ru.id.client
	var names []string
	for _, f := range files {
		for _, doc := range splitYAML(f.File.Data) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return fmt.Errorf("CRD file %s: %w", f.Filename, err)
			}
			if u.Object == nil || u.GetKind() == "" {
				continue
			}
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(u.GroupVersionKind())
			err := c.Get(ctx, client.ObjectKeyFromObject(u), live)
			switch {
			case apierrors.IsNotFound(err):
				if err := c.Create(ctx, u); err != nil {
					return fmt.Errorf("creating CRD %s: %w", u.GetName(), err)
				}
			case err != nil:
				return fmt.Errorf("reading CRD %s: %w", u.GetName(), err)
			case policy == meta.CRDsCreateReplace:
				u.SetResourceVersion(live.GetResourceVersion())
				if err := c.Update(ctx, u); err != nil {
					return fmt.Errorf("replacing CRD %s: %w", u.GetName(), err)
				}
			default:
				continue
			}
			names = append(names, u.GetName())
		}
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, crdTimeout, true, func(ctx context.Context) (bool, error) {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
				return false, nil
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", name, err)
		}
	}
	if len(names) > 0 {
		// The kinds just defined must be mappable by the action that follows.
		ru.id.discovery.Invalidate()
		ru.id.mapper.Reset()
	}
	return nil
}
