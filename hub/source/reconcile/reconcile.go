package reconcile

import (
	"context"
	"errors"
	"fmt"
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
	sourcemetrics "github.com/flotilla-dev/flotilla/hub/source/metrics"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// Event reasons besides the condition reasons.
const (
	// NewArtifactReason: a new revision or new content was stored.
	NewArtifactReason = "NewArtifact"
)

// Object is a source object: GitRepository, OCIRepository and HelmRepository are
// (see api/source/v1alpha1/source.go).
type Object interface {
	client.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
	GetArtifact() *meta.Artifact
	SetArtifact(*meta.Artifact)
	GetInterval() time.Duration
	GetTimeout() time.Duration
	IsSuspended() bool
	SetObservedGeneration(int64)
	SetLastHandledReconcileAt(string)
}

// Fetched is what one successful fetch stored.
type Fetched struct {
	// Artifact is what was stored: URL, revision, digest and size. Nil when the
	// object keeps no artifact (a HelmRepository of type oci).
	Artifact *meta.Artifact
	// Message is the Ready message; "stored artifact for revision …" when empty.
	Message string
}

// Fetcher is one source kind's own part of a reconcile.
type Fetcher[T Object] interface {
	// Fetch gets obj's content, stores it in the Store and says what it stored. It
	// runs under spec.timeout. It may set kind-specific status on obj (a condition,
	// a field), which the reconcile's one patch writes. Errors are classified with
	// outcome.Failure; unclassified ones are Transient with Kind.FailureReason.
	Fetch(ctx context.Context, obj T) (Fetched, error)
}

// Kind describes one source kind to the loop.
type Kind[T Object] struct {
	// Name is the kind, such as sourcev1.GitRepositoryKind: metric label, log value.
	Name string
	// New returns an empty object of the kind to read into.
	New func() T
	// DefaultInterval and DefaultTimeout apply when the spec leaves them out (the
	// CRDs default them too, but an object may predate a default).
	DefaultInterval, DefaultTimeout time.Duration
	// FailureReason is the reason of a failure Fetch gives none.
	FailureReason string
	// Noun names the artifact for people: "artifact", "index".
	Noun string
	// KeepsArtifact reports whether obj stores an artifact at all; one that does not
	// (a HelmRepository of type oci) has no ArtifactInStorage condition. Nil: always.
	KeepsArtifact func(obj T) bool
}

// Reconciler is the reconcile loop of one source kind.
type Reconciler[T Object] struct {
	// Client reads the objects and writes their status; mgr.GetClient() when nil.
	Client client.Client
	// Store keeps the artifacts; the loop asks it whether an artifact is still there.
	Store *storage.Store
	// Recorder emits Events; mgr.GetEventRecorder(name) when nil.
	Recorder events.EventRecorder
	// Now is the clock of artifact update times, time.Now when nil.
	Now func() time.Time
	// Kind and Fetcher are what the kind gives.
	Kind    Kind[T]
	Fetcher Fetcher[T]
}

// SetupWithManager registers the controller as name. It wakes up on spec changes and
// on a new reconcile-requested-at annotation only: its own status patches change
// neither, so it does not wake itself, and Secrets are not watched (see
// hub/source/credentials), spec.interval covers them.
func (r *Reconciler[T]) SetupWithManager(mgr ctrl.Manager, name string) error {
	if r.Store == nil {
		return fmt.Errorf("%s controller needs a Store", name)
	}
	if r.Kind.New == nil || r.Fetcher == nil {
		return fmt.Errorf("%s controller needs Kind.New and a Fetcher", name)
	}
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(name)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(r.Kind.New(), builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, ReconcileRequestedPredicate{}),
		)).
		Complete(r)
}

// Reconcile fetches one source object and records the outcome in its status.
func (r *Reconciler[T]) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	obj := r.Kind.New()
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			sourcemetrics.DeleteArtifactSize(r.Kind.Name, req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if obj.IsSuspended() {
		// Not even lastHandledReconcileAt moves: a suspended object is left as it was.
		log.V(1).Info("suspended, leaving it alone")
		return ctrl.Result{}, nil
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return ctrl.Result{}, nil
	}

	base := obj.DeepCopyObject().(T)
	readyBefore := conditions.Get(obj, meta.ReadyCondition).DeepCopy()
	defer func() {
		if v, ok := obj.GetAnnotations()[meta.ReconcileRequestedAtAnnotation]; ok {
			obj.SetLastHandledReconcileAt(v)
		}
		if err := r.patchStatus(ctx, obj, base); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
			result = ctrl.Result{}
		}
	}()

	interval := orDefault(obj.GetInterval(), r.Kind.DefaultInterval)
	timeout := orDefault(obj.GetTimeout(), r.Kind.DefaultTimeout)
	fetchCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	f, err := r.Fetcher.Fetch(fetchCtx, obj)
	sourcemetrics.ObserveFetch(r.Kind.Name, start, err)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && fetchCtx.Err() != nil {
			err = fmt.Errorf("%w (timeout %s)", err, timeout)
		}
		return r.failed(ctx, obj, outcome.Classify(err, r.Kind.FailureReason), interval, readyBefore)
	}
	return r.succeeded(ctx, obj, f, interval, readyBefore), nil
}

// failed records a failed fetch. The artifact stays: agents keep the last good
// revision. Transient failures go back to controller-runtime, which backs off;
// waiting ones come back at the interval; stalled ones wait for a spec change.
func (r *Reconciler[T]) failed(ctx context.Context, obj T, f outcome.Failure, interval time.Duration, readyBefore *metav1.Condition) (ctrl.Result, error) {
	msg := f.Err.Error()
	switch f.Class {
	case outcome.Stalled:
		conditions.MarkStalled(obj, f.Reason, msg)
	case outcome.Waiting:
		conditions.MarkFailed(obj, f.Reason, msg)
		conditions.Set(obj, meta.ReconcilingCondition, metav1.ConditionTrue, meta.ProgressingReason,
			fmt.Sprintf("fetching again in %s", interval))
	default:
		conditions.MarkFailed(obj, f.Reason, msg)
		conditions.Set(obj, meta.ReconcilingCondition, metav1.ConditionTrue, meta.ProgressingReason,
			"fetching again after a back-off")
	}
	r.markArtifactInStorage(obj)
	if readyChanged(readyBefore, obj) {
		r.event(obj, corev1.EventTypeWarning, f.Reason, msg)
	}
	switch f.Class {
	case outcome.Transient:
		return ctrl.Result{}, f.Err // controller-runtime logs it
	case outcome.Waiting:
		ctrl.LoggerFrom(ctx).Info("fetch failed, waiting for the next interval", "reason", f.Reason, "error", msg, "interval", interval)
		return ctrl.Result{RequeueAfter: interval}, nil
	default:
		ctrl.LoggerFrom(ctx).Info("fetch failed, stalled until the spec changes", "reason", f.Reason, "error", msg)
		return ctrl.Result{}, nil
	}
}

// succeeded records a successful fetch: the artifact, observedGeneration, Ready.
func (r *Reconciler[T]) succeeded(ctx context.Context, obj T, f Fetched, interval time.Duration, readyBefore *metav1.Condition) ctrl.Result {
	obj.SetObservedGeneration(obj.GetGeneration())
	if f.Artifact == nil {
		obj.SetArtifact(nil)
		sourcemetrics.DeleteArtifactSize(r.Kind.Name, obj.GetNamespace(), obj.GetName())
		conditions.MarkReady(obj, meta.SucceededReason, f.Message)
		conditions.Remove(obj, meta.ArtifactInStorageCondition)
		if readyChanged(readyBefore, obj) {
			r.event(obj, corev1.EventTypeNormal, meta.SucceededReason, f.Message)
		}
		return ctrl.Result{RequeueAfter: interval}
	}
	next, isNew := NextArtifact(obj.GetArtifact(), *f.Artifact, metav1.NewTime(r.now()))
	obj.SetArtifact(next)
	msg := f.Message
	if msg == "" {
		msg = ReadyMessage(next.Revision)
	}
	conditions.MarkReady(obj, meta.SucceededReason, msg)
	r.markArtifactInStorage(obj)
	var size int64
	if next.Size != nil {
		size = *next.Size
	}
	sourcemetrics.SetArtifactSize(r.Kind.Name, obj.GetNamespace(), obj.GetName(), size)
	switch {
	case isNew:
		r.event(obj, corev1.EventTypeNormal, NewArtifactReason, msg)
		ctrl.LoggerFrom(ctx).Info("stored new artifact", "revision", next.Revision, "digest", next.Digest, "size", size)
	case readyChanged(readyBefore, obj):
		r.event(obj, corev1.EventTypeNormal, meta.SucceededReason, msg)
	}
	return ctrl.Result{RequeueAfter: interval}
}

func (r *Reconciler[T]) markArtifactInStorage(obj T) {
	if r.Kind.KeepsArtifact != nil && !r.Kind.KeepsArtifact(obj) {
		conditions.Remove(obj, meta.ArtifactInStorageCondition)
		return
	}
	a := obj.GetArtifact()
	noun := r.Kind.Noun
	if noun == "" {
		noun = "artifact"
	}
	MarkArtifactInStorage(obj, a, a != nil && r.Store.Has(a.Digest), noun)
}

// patchStatus writes what this reconcile changed in status, in one merge patch; it
// leaves the API server alone when nothing changed.
func (r *Reconciler[T]) patchStatus(ctx context.Context, obj, base T) error {
	patch := client.MergeFrom(base)
	if data, err := patch.Data(obj); err == nil && string(data) == "{}" {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}

// readyChanged reports whether Ready differs from before in status, reason or
// message: one Event per change, not one per retry.
func readyChanged(before *metav1.Condition, obj Object) bool {
	after := conditions.Get(obj, meta.ReadyCondition)
	if before == nil || after == nil {
		return before != after
	}
	return before.Status != after.Status || before.Reason != after.Reason || before.Message != after.Message
}

func (r *Reconciler[T]) event(obj T, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, "Fetch", "%s", msg)
	}
}

func (r *Reconciler[T]) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
