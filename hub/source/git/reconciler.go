package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	sourcemetrics "github.com/flotilla-dev/flotilla/hub/source/metrics"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// ControllerName names the controller, its logger and its events.
const ControllerName = "gitrepository"

// Event reasons besides the condition reasons.
const (
	// NewArtifactReason: a new revision or new content was stored.
	NewArtifactReason = "NewArtifact"
)

// Defaults for a spec that leaves them out (the CRD defaults them too).
const (
	DefaultInterval = time.Minute
	DefaultTimeout  = 60 * time.Second
)

// Reconciler fetches GitRepositories into artifacts.
type Reconciler struct {
	// Client reads GitRepositories and writes their status; mgr.GetClient() when nil.
	Client client.Client
	// APIReader reads Secrets straight from the API server, so that the hub neither
	// caches every Secret nor needs to watch them; mgr.GetAPIReader() when nil.
	APIReader client.Reader
	// Store keeps the artifacts.
	Store *storage.Store
	// Recorder emits Events; mgr.GetEventRecorder(ControllerName) when nil.
	Recorder events.EventRecorder
	// Now is the clock, time.Now when nil.
	Now func() time.Time
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Store == nil {
		return errors.New("gitrepository controller needs a Store")
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
		For(&sourcev1.GitRepository{}, builder.WithPredicates(
			// Status patches change neither generation nor annotations, so the
			// controller does not wake itself up.
			predicate.Or(predicate.GenerationChangedPredicate{}, ReconcileRequestedPredicate{}),
		)).
		Complete(r)
}

// ReconcileRequestedPredicate passes updates that change the
// flotilla.dev/reconcile-requested-at annotation.
type ReconcileRequestedPredicate struct {
	predicate.Funcs
}

// Update passes when the annotation's value changed to a non-empty one.
func (ReconcileRequestedPredicate) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	v := e.ObjectNew.GetAnnotations()[meta.ReconcileRequestedAtAnnotation]
	return v != "" && v != e.ObjectOld.GetAnnotations()[meta.ReconcileRequestedAtAnnotation]
}

// failure classifies why a reconcile did not finish (see hub/source/outcome).
type failure = outcome.Failure

const (
	transient = outcome.Transient
	waiting   = outcome.Waiting
	stalled   = outcome.Stalled
)

// Reconcile fetches one GitRepository and records the outcome in its status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	obj := &sourcev1.GitRepository{}
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			sourcemetrics.DeleteArtifactSize(sourcev1.GitRepositoryKind, req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if obj.Spec.Suspend {
		log.V(1).Info("suspended, leaving it alone")
		return ctrl.Result{}, nil
	}
	if !obj.DeletionTimestamp.IsZero() {
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
	f, err := r.fetch(ctx, obj)
	sourcemetrics.ObserveFetch(sourcev1.GitRepositoryKind, start, err)
	if err != nil {
		var fl *failure
		if !errors.As(err, &fl) {
			fl = &failure{Kind: transient, Reason: meta.GitOperationFailedReason, Err: err}
		}
		msg := err.Error()
		if fl.Reason == meta.VerificationFailedReason {
			conditions.Set(obj, meta.SourceVerifiedCondition, metav1.ConditionFalse, meta.VerificationFailedReason, msg)
		}
		if fl.Kind == stalled {
			conditions.MarkStalled(obj, fl.Reason, msg)
		} else {
			conditions.MarkFailed(obj, fl.Reason, msg)
		}
		outcome.MarkArtifactInStorage(obj, obj.Status.Artifact, obj.Status.Artifact != nil && r.Store.Has(obj.Status.Artifact.Digest), "artifact")
		r.event(obj, corev1.EventTypeWarning, fl.Reason, msg)
		if fl.Kind == transient {
			return ctrl.Result{}, err // logged by controller-runtime
		}
		log.Info("fetch failed", "reason", fl.Reason, "error", msg)
		switch fl.Kind {
		case waiting:
			return ctrl.Result{RequeueAfter: interval}, nil
		default:
			return ctrl.Result{}, nil
		}
	}

	markVerified(obj, f)
	a, isNew := nextArtifact(obj.Status.Artifact, f, metav1.NewTime(r.now()))
	obj.Status.Artifact = a
	obj.Status.ObservedGeneration = obj.Generation
	conditions.MarkReady(obj, meta.SucceededReason, outcome.ReadyMessage(a.Revision))
	outcome.MarkArtifactInStorage(obj, obj.Status.Artifact, true, "artifact")
	sourcemetrics.SetArtifactSize(sourcev1.GitRepositoryKind, obj.Namespace, obj.Name, *a.Size)
	if isNew {
		r.event(obj, corev1.EventTypeNormal, NewArtifactReason, outcome.ReadyMessage(a.Revision))
		log.Info("stored new artifact", "revision", a.Revision, "digest", a.Digest, "size", *a.Size)
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// fetch clones the repository, verifies it when asked, packs the files and stores
// the artifact. Verification comes before anything is stored, so an unverified
// revision is never served.
func (r *Reconciler) fetch(ctx context.Context, obj *sourcev1.GitRepository) (fetched, error) {
	rm, err := r.remote(ctx, obj)
	if err != nil {
		return fetched{}, err
	}
	var keys keyRing
	if v := obj.Spec.Verify; v != nil {
		if v.Mode == VerifyTag && (obj.Spec.Ref == nil || (obj.Spec.Ref.Tag == "" && obj.Spec.Ref.SemVer == "")) {
			return fetched{}, &failure{Kind: stalled, Reason: meta.VerificationFailedReason,
				Err: errors.New("spec.verify.mode Tag needs spec.ref.tag or spec.ref.semver")}
		}
		if keys, err = r.verificationKeys(ctx, obj); err != nil {
			return fetched{}, err
		}
	}

	timeout := DefaultTimeout
	if obj.Spec.Timeout != nil && obj.Spec.Timeout.Duration > 0 {
		timeout = obj.Spec.Timeout.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "flotilla-gitrepository-")
	if err != nil {
		return fetched{}, &failure{Kind: transient, Reason: meta.StorageOperationFailedReason, Err: err}
	}
	defer os.RemoveAll(dir)

	ctrl.LoggerFrom(ctx).V(1).Info("fetching", "url", redact(rm.URL), "auth", authName(rm.Auth))
	revision, err := checkout(ctx, dir, rm, obj.Spec.Ref)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (timeout %s)", err, timeout)
		}
		kind := transient
		if errors.Is(err, errNoMatchingTag) || isHostKeyError(err) || isAuthError(err) {
			// Retrying at once cannot help; a new tag, or a fixed Secret, can.
			kind = waiting
		}
		return fetched{}, &failure{Kind: kind, Reason: meta.GitOperationFailedReason, Err: err}
	}

	var verifiedBy string
	if v := obj.Spec.Verify; v != nil {
		tag := ""
		if i := strings.LastIndex(revision, "@sha1:"); i > 0 {
			tag = revision[:i]
		}
		verifiedBy, err = verifyCheckout(dir, v.Mode, tag, keys)
		if err != nil {
			kind := transient
			if errors.Is(err, errNotVerified) {
				kind = waiting
			}
			return fetched{}, &failure{Kind: kind, Reason: meta.VerificationFailedReason, Err: fmt.Errorf("revision %s: %w", revision, err)}
		}
	}

	skip, err := ignoreMatcher(dir, obj.Spec.Ignore)
	if err != nil {
		return fetched{}, &failure{Kind: transient, Reason: meta.StorageOperationFailedReason, Err: err}
	}
	files, err := artifact.ReadDir(dir, skip)
	if err != nil {
		// The commit's content is at fault (a link out of the repository, say): only
		// a new commit helps, and the next interval looks for one.
		return fetched{}, &failure{Kind: waiting, Reason: meta.StorageOperationFailedReason, Err: fmt.Errorf("revision %s: %w", revision, err)}
	}
	data, err := artifact.Pack(files)
	if err != nil {
		return fetched{}, &failure{Kind: waiting, Reason: meta.StorageOperationFailedReason, Err: fmt.Errorf("revision %s: %w", revision, err)}
	}
	digest, err := r.Store.Put(data)
	if err != nil {
		return fetched{}, &failure{Kind: transient, Reason: meta.StorageOperationFailedReason, Err: err}
	}
	return fetched{Revision: revision, Digest: digest, Size: int64(len(data)), URL: r.Store.URL(digest), VerifiedBy: verifiedBy}, nil
}

// verificationKeys reads the OpenPGP public keys of spec.verify.secretRef.
func (r *Reconciler) verificationKeys(ctx context.Context, obj *sourcev1.GitRepository) (keyRing, error) {
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: obj.Namespace, Name: obj.Spec.Verify.SecretRef.Name}
	if err := r.APIReader.Get(ctx, key, secret); err != nil {
		kind := transient
		if apierrors.IsNotFound(err) {
			kind = waiting
		}
		return keyRing{}, &failure{Kind: kind, Reason: meta.VerificationFailedReason, Err: fmt.Errorf("reading verification secret %s: %w", key, err)}
	}
	kr, err := newKeyRing(secret.Data)
	if err != nil {
		return keyRing{}, &failure{Kind: waiting, Reason: meta.VerificationFailedReason, Err: fmt.Errorf("verification secret %s: %w", key.Name, err)}
	}
	return kr, nil
}

// remote checks the URL and reads the credentials.
func (r *Reconciler) remote(ctx context.Context, obj *sourcev1.GitRepository) (remote, error) {
	u, err := parseURL(obj.Spec.URL)
	if err != nil {
		return remote{}, &failure{Kind: stalled, Reason: meta.InvalidURLReason, Err: err}
	}
	var data map[string][]byte
	if ref := obj.Spec.SecretRef; ref != nil {
		secret := &corev1.Secret{}
		key := client.ObjectKey{Namespace: obj.Namespace, Name: ref.Name}
		if err := r.APIReader.Get(ctx, key, secret); err != nil {
			return remote{}, &failure{Kind: transient, Reason: meta.GitOperationFailedReason, Err: fmt.Errorf("reading secret %s: %w", key, err)}
		}
		data = secret.Data
		if data == nil {
			data = map[string][]byte{}
		}
	}
	rm, err := remoteFor(u, data)
	if errors.Is(err, errNoSSHSecret) {
		return remote{}, &failure{Kind: stalled, Reason: meta.GitOperationFailedReason, Err: err}
	}
	if err != nil {
		// The Secret may change without the spec changing: look again next interval.
		return remote{}, &failure{Kind: waiting, Reason: meta.GitOperationFailedReason, Err: fmt.Errorf("secret %s: %w", obj.Spec.SecretRef.Name, err)}
	}
	return rm, nil
}

func (r *Reconciler) event(obj *sourcev1.GitRepository, typ, reason, msg string) {
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
