package receiver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

// Field indexes on Receivers in the manager's cache.
const (
	// PathIndex is status.webhookPath: how the handler finds the Receiver of a call.
	PathIndex = "status.webhookPath"
	// secretIndex is <namespace>/<spec.secretRef.name>: which Receivers a Secret
	// change concerns.
	secretIndex = "spec.secretRef"
)

// DefaultInterval is how often a Receiver is checked again when its spec says nothing.
const DefaultInterval = 10 * time.Minute

// IndexFields registers the cache indexes the controller and the handler use. Call
// it once per manager, before the manager starts, on every replica (the handler runs
// on every replica, the controller on the leader).
func IndexFields(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &notificationv1.Receiver{}, PathIndex, func(o client.Object) []string {
		if p := o.(*notificationv1.Receiver).Status.WebhookPath; p != "" {
			return []string{p}
		}
		return nil
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &notificationv1.Receiver{}, secretIndex, func(o client.Object) []string {
		r := o.(*notificationv1.Receiver)
		return []string{r.Namespace + "/" + r.Spec.SecretRef.Name}
	})
}

// Reconciler gives each Receiver its webhook path, once its resources are allowed
// and its token is there.
type Reconciler struct {
	Client client.Client
	// Reader reads Secrets live, so that the hub caches no Secret data.
	Reader   client.Reader
	Recorder events.EventRecorder
	// BaseURL is where callers reach the hub's receivers (scheme and host); status.url
	// is left empty without it.
	BaseURL string
}

// SetupWithManager registers the controller; IndexFields must have run on mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Reader == nil {
		r.Reader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("flotilla-receiver")
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("receiver").
		For(&notificationv1.Receiver{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// Metadata only: a new or changed token is taken up at once, and no Secret
		// data is held in memory.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.forSecret), builder.OnlyMetadata).
		Complete(r)
}

func (r *Reconciler) forSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list notificationv1.ReceiverList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{secretIndex: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, rcv := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Name}})
	}
	return reqs
}

// Reconcile checks one Receiver and writes its path, or why it has none.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	rcv := &notificationv1.Receiver{}
	if err := r.Client.Get(ctx, req.NamespacedName, rcv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if rcv.Spec.Suspend || !rcv.DeletionTimestamp.IsZero() {
		// The handler refuses calls to a suspended Receiver; its status stays.
		return ctrl.Result{}, nil
	}
	base := rcv.DeepCopy()
	readyBefore := conditions.Get(rcv, meta.ReadyCondition).DeepCopy()
	defer func() {
		if v, ok := rcv.Annotations[meta.ReconcileRequestedAtAnnotation]; ok {
			rcv.Status.LastHandledReconcileAt = v
		}
		if err := r.Client.Status().Patch(ctx, rcv, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, err)
			result = ctrl.Result{}
		}
	}()
	interval := DefaultInterval
	if rcv.Spec.Interval != nil && rcv.Spec.Interval.Duration > 0 {
		interval = max(rcv.Spec.Interval.Duration, 10*time.Second)
	}

	st, err := r.check(ctx, rcv)
	if err != nil {
		return ctrl.Result{}, err
	}
	apply(rcv, st, r.BaseURL)
	if now := conditions.Get(rcv, meta.ReadyCondition); readyBefore == nil || readyBefore.Status != now.Status ||
		readyBefore.Reason != now.Reason || base.Status.WebhookPath != rcv.Status.WebhookPath {
		typ := corev1.EventTypeNormal
		if now.Status != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(rcv, nil, typ, now.Reason, "Reconcile", "%s", now.Message)
	}
	if st.reason == notificationv1.ResourceNotAllowedReason {
		return ctrl.Result{}, nil // stalled: the spec must change
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}

// state is what a Receiver's check found.
type state struct {
	path    string // served path; empty when not served
	reason  string // empty when Ready
	message string
}

// check reads what the Receiver needs: allowed resources, then its token.
func (r *Reconciler) check(ctx context.Context, rcv *notificationv1.Receiver) (state, error) {
	if _, err := Targets(rcv); err != nil {
		return state{reason: notificationv1.ResourceNotAllowedReason, message: err.Error()}, nil
	}
	token, err := ReadToken(ctx, r.Reader, rcv)
	if err != nil {
		var missing *TokenError
		if errors.As(err, &missing) {
			return state{reason: notificationv1.TokenNotFoundReason, message: err.Error()}, nil
		}
		return state{}, err
	}
	return state{path: WebhookPath(token, rcv.Name, rcv.Namespace)}, nil
}

// apply writes a check's outcome into rcv's status; it has no other effect. A
// Receiver that is not Ready has no path, so its old path stops being served.
func apply(rcv *notificationv1.Receiver, st state, baseURL string) {
	rcv.Status.WebhookPath = st.path
	rcv.Status.URL = ""
	switch st.reason {
	case "":
		if baseURL != "" {
			rcv.Status.URL = strings.TrimSuffix(baseURL, "/") + st.path
		}
		conditions.MarkReady(rcv, meta.SucceededReason, "Receiver serves "+st.path)
		rcv.Status.ObservedGeneration = rcv.Generation
	case notificationv1.ResourceNotAllowedReason:
		conditions.MarkStalled(rcv, st.reason, st.message)
	default:
		conditions.MarkFailed(rcv, st.reason, st.message)
	}
}

// TokenError: the Receiver's Secret or its token is missing.
type TokenError struct{ msg string }

func (e *TokenError) Error() string { return e.msg }

// ReadToken reads the Receiver's token from its Secret, live.
func ReadToken(ctx context.Context, reader client.Reader, rcv *notificationv1.Receiver) (string, error) {
	var s corev1.Secret
	key := types.NamespacedName{Namespace: rcv.Namespace, Name: rcv.Spec.SecretRef.Name}
	if err := reader.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &TokenError{fmt.Sprintf("Secret %s not found", key)}
		}
		return "", fmt.Errorf("reading Secret %s: %w", key, err)
	}
	token := strings.TrimSpace(string(s.Data[notificationv1.TokenKey]))
	if token == "" {
		return "", &TokenError{fmt.Sprintf("Secret %s has no %q", key, notificationv1.TokenKey)}
	}
	return token, nil
}
