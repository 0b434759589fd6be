package oci

import (
	"context"
	"errors"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/source/reconcile"
)

// ControllerName names the controller, its logger and its events.
const ControllerName = "ocirepository"

const (
	// DefaultInterval applies when the spec leaves spec.interval out (the CRD
	// defaults it too).
	DefaultInterval = 5 * time.Minute
	// MaxArtifactSize bounds what one layer may unpack to, so that a hostile or
	// mistaken artifact cannot fill the hub's memory.
	MaxArtifactSize = 256 << 20
)

// Reconciler is the OCIRepository controller: the dependencies every source kind is
// given (see reconcile.Deps) and Fetch, around which hub/source/reconcile
// runs the loop.
type Reconciler reconcile.Deps

// kind is what the loop needs to know about OCIRepositories besides Fetch.
var kind = reconcile.Kind[*sourcev1.OCIRepository]{
	Name:            sourcev1.OCIRepositoryKind,
	DefaultInterval: DefaultInterval,
	FailureReason:   sourcev1.OCIPullFailedReason,
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return reconcile.Setup(mgr, ControllerName, (*reconcile.Deps)(r), kind, r)
}

// Fetch pulls the artifact and stores it.
func (r *Reconciler) Fetch(ctx context.Context, obj *sourcev1.OCIRepository) (reconcile.Fetched, error) {
	repo, err := repository(obj.Spec.URL, obj.Spec.Insecure)
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Stalled, meta.InvalidURLReason, err)
	}
	creds, err := credentials.Load(ctx, r.APIReader, obj.Namespace, obj.Spec.SecretRef, credentials.Options{Scheme: "oci", Registry: repo.RegistryStr()})
	if err != nil {
		return reconcile.Fetched{}, err
	}
	opts, err := pullOptionsFor(creds, r.Transport)
	if err != nil {
		return reconcile.Fetched{}, err
	}

	p, err := pull(ctx, repo, obj.Spec.Ref, obj.Spec.LayerSelector, opts, MaxArtifactSize)
	switch {
	case err == nil:
	case credentials.Refused(err):
		return reconcile.Fetched{}, outcome.Fail(outcome.Transient, sourcev1.AuthenticationFailedReason, err)
	case errors.Is(err, errNoMatchingTag):
		return reconcile.Fetched{}, outcome.Fail(outcome.Waiting, "", err)
	case errors.Is(err, errNoLayer):
		// Only a new artifact in the registry, or a new selector, helps.
		return reconcile.Fetched{}, outcome.Fail(outcome.Waiting, sourcev1.InvalidLayerReason, err)
	case errors.Is(err, errBadLayer):
		// Only a new artifact in the registry helps.
		return reconcile.Fetched{}, outcome.Fail(outcome.Waiting, sourcev1.InvalidArtifactReason, err)
	default:
		return reconcile.Fetched{}, err // transient, or stalled on an invalid range
	}

	digest, err := r.Store.Put(p.Data)
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Transient, meta.StorageOperationFailedReason, err)
	}
	size := int64(len(p.Data))
	return reconcile.Fetched{Artifact: &meta.Artifact{URL: r.Store.URL(digest), Revision: p.Revision, Digest: digest, Size: &size}}, nil
}
