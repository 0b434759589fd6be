package helm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/git"
	sourcemetrics "github.com/flotilla-dev/flotilla/hub/source/metrics"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// ControllerName names the controller, its logger and its events.
const ControllerName = "helmrepository"

// NewArtifactReason is the Event reason for a new index stored.
const NewArtifactReason = "NewArtifact"

// Repository types of spec.type.
const (
	TypeDefault = "default"
	TypeOCI     = "oci"
)

// Defaults for a spec that leaves them out (the CRD defaults them too).
const (
	DefaultInterval = 10 * time.Minute
	DefaultTimeout  = 60 * time.Second
)

// Reconciler fetches HelmRepository indexes into artifacts.
type Reconciler struct {
	// Client reads HelmRepositories and writes their status; mgr.GetClient() when nil.
	Client client.Client
	// APIReader reads Secrets straight from the API server; mgr.GetAPIReader() when nil.
	APIReader client.Reader
	// Store keeps the artifacts.
	Store *storage.Store
	// Recorder emits Events; mgr.GetEventRecorder(ControllerName) when nil.
	Recorder events.EventRecorder
	// Transport is the HTTP transport to repositories; http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Now is the clock, time.Now when nil.
	Now func() time.Time
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Store == nil {
		return errors.New("helmrepository controller needs a Store")
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
		For(&sourcev1.HelmRepository{}, builder.WithPredicates(
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

// Reconcile fetches one HelmRepository and records the outcome in its status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	obj := &sourcev1.HelmRepository{}
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			sourcemetrics.DeleteArtifactSize(sourcev1.HelmRepositoryKind, req.Namespace, req.Name)
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
	a, msg, err := r.fetch(ctx, obj)
	sourcemetrics.ObserveFetch(sourcev1.HelmRepositoryKind, start, err)
	if err != nil {
		var fl *failure
		if !errors.As(err, &fl) {
			fl = &failure{Kind: transient, Reason: sourcev1.IndexationFailedReason, Err: err}
		}
		msg := err.Error()
		if fl.Kind == stalled {
			conditions.MarkStalled(obj, fl.Reason, msg)
		} else {
			conditions.MarkFailed(obj, fl.Reason, msg)
		}
		markArtifactInStorage(obj, r.Store)
		r.event(obj, corev1.EventTypeWarning, fl.Reason, msg)
		if fl.Kind == transient {
			return ctrl.Result{}, err
		}
		log.Info("fetch failed", "reason", fl.Reason, "error", msg)
		if fl.Kind == waiting {
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		return ctrl.Result{}, nil
	}

	obj.Status.ObservedGeneration = obj.Generation
	if a == nil {
		// An OCI repository has no index: nothing is stored, charts come one by one.
		obj.Status.Artifact = nil
		conditions.MarkReady(obj, meta.SucceededReason, msg)
		conditions.Remove(obj, meta.ArtifactInStorageCondition)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	next, isNew := outcome.NextArtifact(obj.Status.Artifact, *a, metav1.NewTime(r.now()))
	obj.Status.Artifact = next
	conditions.MarkReady(obj, meta.SucceededReason, msg)
	markArtifactInStorage(obj, r.Store)
	sourcemetrics.SetArtifactSize(sourcev1.HelmRepositoryKind, obj.Namespace, obj.Name, *next.Size)
	if isNew {
		r.event(obj, corev1.EventTypeNormal, NewArtifactReason, msg)
		log.Info("stored new index", "revision", next.Revision, "digest", next.Digest, "size", *next.Size)
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// fetch does the work of one reconcile; it returns the artifact (nil for oci) and
// the Ready message.
func (r *Reconciler) fetch(ctx context.Context, obj *sourcev1.HelmRepository) (*meta.Artifact, string, error) {
	var data map[string][]byte
	if ref := obj.Spec.SecretRef; ref != nil {
		secret := &corev1.Secret{}
		key := client.ObjectKey{Namespace: obj.Namespace, Name: ref.Name}
		if err := r.APIReader.Get(ctx, key, secret); err != nil {
			kind := transient
			if apierrors.IsNotFound(err) {
				kind = waiting
			}
			return nil, "", &failure{Kind: kind, Reason: sourcev1.AuthenticationFailedReason, Err: fmt.Errorf("reading secret %s: %w", key, err)}
		}
		data = secret.Data
		if data == nil {
			data = map[string][]byte{}
		}
	}
	creds, err := credentialsFrom(data)
	if err != nil {
		return nil, "", &failure{Kind: waiting, Reason: sourcev1.AuthenticationFailedReason, Err: fmt.Errorf("secret %s: %w", obj.Spec.SecretRef.Name, err)}
	}
	timeout := DefaultTimeout
	if obj.Spec.Timeout != nil && obj.Spec.Timeout.Duration > 0 {
		timeout = obj.Spec.Timeout.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if obj.Spec.Type == TypeOCI {
		return nil, "OCI repository " + obj.Spec.URL + " is reachable; charts are pulled when a HelmRelease asks for them", r.checkOCI(ctx, obj.Spec.URL, creds)
	}

	u, err := indexURL(obj.Spec.URL)
	if err != nil {
		return nil, "", &failure{Kind: stalled, Reason: meta.InvalidURLReason, Err: err}
	}
	hc, err := creds.client(r.Transport)
	if err != nil {
		return nil, "", &failure{Kind: waiting, Reason: sourcev1.AuthenticationFailedReason, Err: err}
	}
	index, err := creds.get(ctx, hc, u, MaxIndexSize)
	switch {
	case err == nil:
	case errors.Is(err, errAuth):
		return nil, "", &failure{Kind: waiting, Reason: sourcev1.AuthenticationFailedReason, Err: err}
	default:
		return nil, "", &failure{Kind: transient, Reason: sourcev1.IndexationFailedReason, Err: err}
	}
	idx, err := parseIndex(index)
	if err != nil {
		return nil, "", &failure{Kind: waiting, Reason: sourcev1.InvalidArtifactReason, Err: err}
	}
	packed, err := artifact.Pack(map[string][]byte{IndexFile: index})
	if err != nil {
		return nil, "", &failure{Kind: transient, Reason: meta.StorageOperationFailedReason, Err: err}
	}
	digest, err := r.Store.Put(packed)
	if err != nil {
		return nil, "", &failure{Kind: transient, Reason: meta.StorageOperationFailedReason, Err: err}
	}
	size := int64(len(packed))
	revision := indexRevision(index)
	msg := fmt.Sprintf("stored index revision %s with %d charts", revision, len(idx.Entries))
	return &meta.Artifact{URL: r.Store.URL(digest), Revision: revision, Digest: digest, Size: &size}, msg, nil
}

// checkOCI checks the URL and, where the registry hands out tokens, the credentials.
func (r *Reconciler) checkOCI(ctx context.Context, raw string, creds credentials) error {
	rest, ok := strings.CutPrefix(raw, "oci://")
	if !ok {
		return &failure{Kind: stalled, Reason: meta.InvalidURLReason, Err: fmt.Errorf("%w %q: type oci needs an oci:// URL", errInvalidURL, raw)}
	}
	repo, err := name.NewRepository(strings.TrimSuffix(rest, "/"), name.StrictValidation)
	if err != nil {
		return &failure{Kind: stalled, Reason: meta.InvalidURLReason, Err: fmt.Errorf("%w %q: %v", errInvalidURL, raw, err)}
	}
	hc, err := creds.client(r.Transport)
	if err != nil {
		return &failure{Kind: waiting, Reason: sourcev1.AuthenticationFailedReason, Err: err}
	}
	auth := authn.Anonymous
	if creds.Username != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: creds.Username, Password: creds.Password})
	}
	if _, err := transport.NewWithContext(ctx, repo.Registry, auth, hc.Transport, []string{repo.Scope(transport.PullScope)}); err != nil {
		var te *transport.Error
		if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
			return &failure{Kind: waiting, Reason: sourcev1.AuthenticationFailedReason, Err: err}
		}
		return &failure{Kind: transient, Reason: sourcev1.IndexationFailedReason, Err: err}
	}
	return nil
}

func (r *Reconciler) event(obj *sourcev1.HelmRepository, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, "Fetch", "%s", msg)
	}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
