package oci

import (
	"context"
	"errors"
	"net/http"
	"time"

	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/source/reconcile"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// ControllerName names the controller, its logger and its events.
const ControllerName = "ocirepository"

// Defaults for a spec that leaves them out (the CRD defaults them too).
const (
	DefaultInterval = 5 * time.Minute
	DefaultTimeout  = 60 * time.Second
	// MaxArtifactSize bounds what one layer may unpack to, so that a hostile or
	// mistaken artifact cannot fill the hub's memory.
	MaxArtifactSize = 256 << 20
)

// Reconciler pulls OCIRepositories into artifacts; hub/source/reconcile runs the
// loop around its Fetch.
type Reconciler struct {
	// Client reads OCIRepositories and writes their status; mgr.GetClient() when nil.
	Client client.Client
	// APIReader reads Secrets straight from the API server; mgr.GetAPIReader() when nil.
	APIReader client.Reader
	// Store keeps the artifacts.
	Store *storage.Store
	// Recorder emits Events; mgr.GetEventRecorder(ControllerName) when nil.
	Recorder events.EventRecorder
	// Transport is the HTTP transport to registries; http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Now is the clock, time.Now when nil.
	Now func() time.Time
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	return (&reconcile.Reconciler[*sourcev1.OCIRepository]{
		Client: r.Client, Store: r.Store, Recorder: r.Recorder, Now: r.Now, Fetcher: r,
		Kind: reconcile.Kind[*sourcev1.OCIRepository]{
			Name:            sourcev1.OCIRepositoryKind,
			New:             func() *sourcev1.OCIRepository { return &sourcev1.OCIRepository{} },
			DefaultInterval: DefaultInterval,
			DefaultTimeout:  DefaultTimeout,
			FailureReason:   sourcev1.OCIPullFailedReason,
		},
	}).SetupWithManager(mgr, ControllerName)
}

// Fetch pulls the artifact and stores it.
func (r *Reconciler) Fetch(ctx context.Context, obj *sourcev1.OCIRepository) (reconcile.Fetched, error) {
	repo, err := repository(obj.Spec.URL, obj.Spec.Insecure)
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Stalled, meta.InvalidURLReason, err)
	}
	creds, err := credentials.Load(ctx, r.APIReader, obj.Namespace, obj.Spec.SecretRef, credentials.Options{Scheme: "oci"})
	if err != nil {
		return reconcile.Fetched{}, err
	}
	opts, err := pullOptionsFor(creds, r.Transport)
	if err != nil {
		return reconcile.Fetched{}, err
	}

	p, err := pull(ctx, repo, obj.Spec.Ref, opts, MaxArtifactSize)
	switch {
	case err == nil:
	case credentials.Refused(err):
		return reconcile.Fetched{}, outcome.Fail(outcome.Transient, sourcev1.AuthenticationFailedReason, err)
	case errors.Is(err, errNoMatchingTag):
		return reconcile.Fetched{}, outcome.Fail(outcome.Waiting, "", err)
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
