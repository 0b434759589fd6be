package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/git"
	sourcemetrics "github.com/flotilla-dev/flotilla/hub/source/metrics"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// ControllerName names the controller, its logger and its events.
const ControllerName = "ocirepository"

// NewArtifactReason is the Event reason for a new revision or new content stored.
const NewArtifactReason = "NewArtifact"

// Defaults for a spec that leaves them out (the CRD defaults them too).
const (
	DefaultInterval = 5 * time.Minute
	DefaultTimeout  = 60 * time.Second
	// MaxArtifactSize bounds what one layer may unpack to, so that a hostile or
	// mistaken artifact cannot fill the hub's memory.
	MaxArtifactSize = 256 << 20
)

// Reconciler pulls OCIRepositories into artifacts.
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
	if r.Store == nil {
		return errors.New("ocirepository controller needs a Store")
	}
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(ControllerName)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&sourcev1.OCIRepository{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, git.ReconcileRequestedPredicate{}),
		)).
		Complete(r)
}

// failure classifies why a reconcile did not finish (see hub/source/outcome).
type failure = outcome.Failure

const (
	transient = outcome.Transient
	waiting   = outcome.Waiting
	stalled   = outcome.Stalled
)

// Reconcile pulls one OCIRepository and records the outcome in its status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	obj := &sourcev1.OCIRepository{}
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			sourcemetrics.DeleteArtifactSize(sourcev1.OCIRepositoryKind, req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if obj.Spec.Suspend || !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	base := obj.DeepCopy()
	defer func() {
		if v, ok := obj.Annotations[meta.ReconcileRequestedAtAnnotation]; ok {
			obj.Status.LastHandledReconcileAt = v
		}
		if err := r.Client.Status().Patch(ctx, obj, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			retErr = kerrors.NewAggregate([]error{retErr, fmt.Errorf("patching status: %w", err)})
			result = ctrl.Result{}
		}
	}()

	interval := obj.Spec.Interval.Duration
	if interval <= 0 {
		interval = DefaultInterval
	}
	start := time.Now()
	a, err := r.fetch(ctx, obj)
	sourcemetrics.ObserveFetch(sourcev1.OCIRepositoryKind, start, err)
	if err != nil {
		var fl *failure
		if !errors.As(err, &fl) {
			fl = &failure{Kind: transient, Reason: sourcev1.OCIPullFailedReason, Err: err}
		}
		msg := err.Error()
		if fl.Kind == stalled {
			conditions.MarkStalled(obj, fl.Reason, msg)
		} else {
			conditions.MarkFailed(obj, fl.Reason, msg)
		}
		outcome.MarkArtifactInStorage(obj, obj.Status.Artifact, obj.Status.Artifact != nil && r.Store.Has(obj.Status.Artifact.Digest), "artifact")
		r.event(obj, corev1.EventTypeWarning, fl.Reason, msg)
		if fl.Kind == transient {
			return ctrl.Result{}, err
		}
		log.Info("pull failed", "reason", fl.Reason, "error", msg)
		if fl.Kind == waiting {
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		return ctrl.Result{}, nil
	}

	next, isNew := outcome.NextArtifact(obj.Status.Artifact, a, metav1.NewTime(r.now()))
	obj.Status.Artifact = next
	obj.Status.ObservedGeneration = obj.Generation
	conditions.MarkReady(obj, meta.SucceededReason, outcome.ReadyMessage(next.Revision))
	outcome.MarkArtifactInStorage(obj, obj.Status.Artifact, true, "artifact")
	sourcemetrics.SetArtifactSize(sourcev1.OCIRepositoryKind, obj.Namespace, obj.Name, *next.Size)
	if isNew {
		r.event(obj, corev1.EventTypeNormal, NewArtifactReason, outcome.ReadyMessage(next.Revision))
		log.Info("stored new artifact", "revision", next.Revision, "digest", next.Digest, "size", *next.Size)
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// fetch pulls the artifact and stores it; it returns the artifact to record.
func (r *Reconciler) fetch(ctx context.Context, obj *sourcev1.OCIRepository) (meta.Artifact, error) {
	repo, err := repository(obj.Spec.URL, obj.Spec.Insecure)
	if err != nil {
		return meta.Artifact{}, &failure{Kind: stalled, Reason: meta.InvalidURLReason, Err: err}
	}
	var data map[string][]byte
	if ref := obj.Spec.SecretRef; ref != nil {
		secret := &corev1.Secret{}
		key := client.ObjectKey{Namespace: obj.Namespace, Name: ref.Name}
		if err := r.APIReader.Get(ctx, key, secret); err != nil {
			kind := transient
			if apierrors.IsNotFound(err) {
				kind = waiting
			}
			return meta.Artifact{}, &failure{Kind: kind, Reason: sourcev1.AuthenticationFailedReason, Err: fmt.Errorf("reading secret %s: %w", key, err)}
		}
		data = secret.Data
		if data == nil {
			data = map[string][]byte{}
		}
	}
	opts, err := credentials(data)
	if err != nil {
		return meta.Artifact{}, &failure{Kind: waiting, Reason: sourcev1.AuthenticationFailedReason, Err: fmt.Errorf("secret %s: %w", obj.Spec.SecretRef.Name, err)}
	}
	opts.Insecure = obj.Spec.Insecure
	opts.Base = r.Transport

	timeout := DefaultTimeout
	if obj.Spec.Timeout != nil && obj.Spec.Timeout.Duration > 0 {
		timeout = obj.Spec.Timeout.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	p, err := pull(ctx, repo, obj.Spec.Ref, opts, MaxArtifactSize)
	switch {
	case err == nil:
	case errors.Is(err, errInvalidURL):
		return meta.Artifact{}, &failure{Kind: stalled, Reason: meta.InvalidURLReason, Err: err}
	case isAuthError(err):
		return meta.Artifact{}, &failure{Kind: waiting, Reason: sourcev1.AuthenticationFailedReason, Err: err}
	case errors.Is(err, errNoMatchingTag):
		return meta.Artifact{}, &failure{Kind: waiting, Reason: sourcev1.OCIPullFailedReason, Err: err}
	case errors.Is(err, errBadLayer):
		// Only a new artifact in the registry helps.
		return meta.Artifact{}, &failure{Kind: waiting, Reason: sourcev1.InvalidArtifactReason, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return meta.Artifact{}, &failure{Kind: transient, Reason: sourcev1.OCIPullFailedReason, Err: fmt.Errorf("%w (timeout %s)", err, timeout)}
	default:
		return meta.Artifact{}, &failure{Kind: transient, Reason: sourcev1.OCIPullFailedReason, Err: err}
	}

	digest, err := r.Store.Put(p.Data)
	if err != nil {
		return meta.Artifact{}, &failure{Kind: transient, Reason: meta.StorageOperationFailedReason, Err: err}
	}
	size := int64(len(p.Data))
	return meta.Artifact{URL: r.Store.URL(digest), Revision: p.Revision, Digest: digest, Size: &size}, nil
}

func (r *Reconciler) event(obj *sourcev1.OCIRepository, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, "Pull", "%s", msg)
	}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
