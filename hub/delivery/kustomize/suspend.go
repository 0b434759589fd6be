package kustomize

import (
	"context"
	"fmt"

	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// suspendAssignments sets spec.suspend on every Assignment of a suspended
// Kustomization, signed again for its cluster, so that the agents leave what they run
// as it is. Nothing else in the spec changes; resuming writes the Assignments anew
// through the engine, without spec.suspend.
func (r *Reconciler) suspendAssignments(ctx context.Context, ks *deliveryv1.Kustomization) error {
	var list fleetv1.AssignmentList
	labels := fleetv1.OwnerLabels(deliveryv1.KustomizationKind, ks.Namespace, ks.Name)
	if err := r.Client.List(ctx, &list, client.MatchingLabels(labels)); err != nil {
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
		sig, err := r.Sign(cluster, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("signing the suspended Assignment for cluster %s: %w", cluster, err))
			continue
		}
		a.Spec.Artifact.Signature = sig
		if err := r.Client.Patch(ctx, a, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", cluster, err))
		}
	}
	return kerrors.NewAggregate(errs)
}
