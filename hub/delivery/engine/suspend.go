package engine

import (
	"context"
	"fmt"

	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Suspend sets spec.suspend on every Assignment of a suspended deployment of kind,
// signed again for its cluster, so that the agents leave what they run as it is.
// Nothing else in the spec changes; resuming writes the Assignments anew through
// Deploy, without spec.suspend.
func (e *Engine) Suspend(ctx context.Context, kind string, owner client.Object) error {
	var list fleetv1.AssignmentList
	labels := fleetv1.OwnerLabels(kind, owner.GetNamespace(), owner.GetName())
	if err := e.Client.List(ctx, &list, client.MatchingLabels(labels)); err != nil {
		return err
	}
	var errs []error
	for i := range list.Items {
		a := &list.Items[i]
		cluster := a.Labels[fleetv1.ClusterLabel]
		if a.Spec.Suspend || a.DeletionTimestamp != nil || cluster == "" {
			continue
		}
		before := a.DeepCopy()
		a.Spec.Suspend = true
		sig, err := e.Sign(cluster, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("signing the suspended Assignment for cluster %s: %w", cluster, err))
			continue
		}
		a.Spec.Artifact.Signature = sig // with the URL the signer may have granted anew
		if err := e.Client.Patch(ctx, a, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", cluster, err))
		}
	}
	return kerrors.NewAggregate(errs)
}
