package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
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
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	sourcemetrics "github.com/flotilla-dev/flotilla/hub/source/metrics"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/tenancy"
	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// Event reasons besides the condition reasons.
const (
	// NewArtifactReason: a new revision or new content was stored.
	NewArtifactReason = "NewArtifact"
)

// DefaultTimeout bounds a fetch whose spec leaves spec.timeout out and whose Kind
// names no other default (the CRDs default it too).
const DefaultTimeout = 60 * time.Second

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
	// DefaultInterval and DefaultTimeout apply when the spec leaves them out (the
	// CRDs default them too, but an object may predate a default); DefaultTimeout
	// is the package's when zero.
	DefaultInterval, DefaultTimeout time.Duration
	// FailureReason is the reason of a failure Fetch gives none.
	FailureReason string
	// Noun names the artifact for people: "artifact", "index".
	Noun string
	// KeepsArtifact reports whether obj stores an artifact at all; one that does not
	// (a HelmRepository of type oci) has no ArtifactInStorage condition. Nil: always.
	KeepsArtifact func(obj T) bool
	// Watch, when set, adds watches to the controller besides the object's own
	// spec (a GitRepository watches the repositories it includes).
	Watch func(*builder.Builder) *builder.Builder
}

// Deps is what every source kind's controller is given. Each kind's Reconciler is
// a Deps of its own type (type Reconciler reconcile.Deps), so that they are filled
// alike and their Fetch methods see the same Store and readers as the loop.
type Deps struct {
	// Client reads the objects and writes their status; mgr.GetClient() when nil.
	Client client.Client
	// APIReader reads Secrets straight from the API server, so that the hub neither
	// caches every Secret nor needs to watch them; mgr.GetAPIReader() when nil.
	APIReader client.Reader
	// Store keeps the artifacts; the loop also asks it whether one is still there.
	Store storage.Artifacts
	// Recorder emits Events; mgr.GetEventRecorder(controller name) when nil.
	Recorder events.EventRecorder
	// Transport is the HTTP transport to servers: egress.Transport over
	// http.DefaultTransport when nil, over it when it is an *http.Transport, so that
	// a tenant's requests are held to Egress. Another RoundTripper must dial through
	// an egress.Dialer itself. Git does not use it: go-git keeps its own
	// (hub/source/git installs an egress.Transport there).
	Transport http.RoundTripper
	// Egress is what a tenant's source may make the hub dial (tenancy/egress): the
	// default rules, no allowed network, when nil. Sources in namespaces no Tenant
	// owns are not restricted.
	Egress *egress.Policy
	// Now is the clock of artifact update times, time.Now when nil.
	Now func() time.Time
}

// Reconciler is the reconcile loop of one source kind.
type Reconciler[T Object] struct {
	Deps
	Kind    Kind[T]
	Fetcher Fetcher[T]
}

// Setup completes deps from mgr where they are empty (deps is the kind's own
// Reconciler, so its Fetch sees the same) and registers the controller name for
// kind with fetcher. The controller wakes up on spec changes and on a new
// reconcile-requested-at annotation only: its own status patches change neither, so
// it does not wake itself, and Secrets are not watched; spec.interval covers them.
func Setup[T Object](mgr ctrl.Manager, name string, deps *Deps, kind Kind[T], fetcher Fetcher[T]) error {
	if deps.Store == nil {
		return fmt.Errorf("%s controller needs a Store", name)
	}
	if deps.Client == nil {
		deps.Client = mgr.GetClient()
	}
	if deps.APIReader == nil {
		deps.APIReader = mgr.GetAPIReader()
	}
	if deps.Recorder == nil {
		deps.Recorder = mgr.GetEventRecorder(name)
	}
	deps.Transport = egress.Wrap(deps.Transport)
	b := ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(newObject[T](), builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, ReconcileRequestedPredicate{}),
		))
	if kind.Watch != nil {
		b = kind.Watch(b)
	}
	return b.Complete(&Reconciler[T]{Deps: *deps, Kind: kind, Fetcher: fetcher})
}

// Reconcile fetches one source object and records the outcome in its status.
func (r *Reconciler[T]) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	obj := newObject[T]()
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

	// A floor, so that no source asks the hub (and its Git server) to fetch every second.
	interval := max(orDefault(obj.GetInterval(), r.Kind.DefaultInterval), MinInterval)
	timeout := orDefault(obj.GetTimeout(), orDefault(r.Kind.DefaultTimeout, DefaultTimeout))
	fetchCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fetchCtx, err := EgressContext(fetchCtx, r.Client, obj.GetNamespace(), r.Egress)
	if err != nil {
		return ctrl.Result{}, err
	}
	start := time.Now()
	f, err := r.Fetcher.Fetch(fetchCtx, obj)
	sourcemetrics.ObserveFetch(r.Kind.Name, start, err)
	if err != nil {
		if ref := refusal(fetchCtx, err); ref != nil {
			// Terminal like the other tenancy refusals, but tried again at the
			// interval: what a name resolves to may change without the spec.
			_, _ = r.failed(ctx, obj, outcome.Failure{Class: outcome.Stalled, Reason: tenancyv1.EgressNotAllowedReason, Err: ref}, interval, readyBefore)
			return ctrl.Result{RequeueAfter: interval}, nil
		}
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
	next, isNew := nextArtifact(obj.GetArtifact(), *f.Artifact, metav1.NewTime(r.now()))
	obj.SetArtifact(next)
	msg := f.Message
	if msg == "" {
		msg = readyMessage(next.Revision)
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
	setArtifactInStorage(obj, a, a != nil && r.Store.Has(a.Digest), noun)
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

// newObject returns a new, empty T; T is a pointer to an API type, as every
// client.Object is, so the kinds need not each give a constructor.
func newObject[T Object]() T {
	return reflect.New(reflect.TypeFor[T]().Elem()).Interface().(T)
}

// EgressContext returns ctx restricted by policy (tenancy/egress) when a Tenant
// claims namespace, even one being deleted; ctx itself for a platform namespace. Every
// dial the hub makes for an object of namespace goes under the context it returns.
func EgressContext(ctx context.Context, c client.Reader, namespace string, policy *egress.Policy) (context.Context, error) {
	claimed, err := tenancy.Claimed(ctx, c, namespace)
	if err != nil || !claimed {
		return ctx, err
	}
	return egress.Restrict(ctx, policy), nil
}

// refusal returns the egress refusal behind a failed fetch: in err's chain, or
// recorded on ctx when a library's error hides it.
func refusal(ctx context.Context, err error) *egress.Refusal {
	var ref *egress.Refusal
	if errors.As(err, &ref) {
		return ref
	}
	return egress.Refused(ctx)
}

// MinInterval is the shortest interval between fetches the hub honours.
const MinInterval = 10 * time.Second

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
