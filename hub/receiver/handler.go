package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

// Limits against abuse; Handler's fields override them.
const (
	// DefaultMaxBody bounds a call's body: GitHub's push payloads are well under it.
	DefaultMaxBody = 4 << 20
	// DefaultRate and DefaultBurst bound calls to all receivers of one hub replica.
	DefaultRate  = 20
	DefaultBurst = 40
	// DefaultReceiverRate and DefaultReceiverBurst bound calls to one Receiver: a
	// push reconciles at once, and a flood of them costs one reconcile a second.
	DefaultReceiverRate  = 1
	DefaultReceiverBurst = 5
)

var pathPattern = regexp.MustCompile(`^` + regexp.QuoteMeta(notificationv1.WebhookPathPrefix) + `[0-9a-f]{64}$`)

// Handler serves every Receiver under notificationv1.WebhookPathPrefix.
type Handler struct {
	// Cache finds the Receiver of a path (the PathIndex must be registered).
	Cache client.Reader
	// Live reads the Receiver's Secret and lists its resources, uncached.
	Live client.Reader
	// Writer sets the reconcile-requested-at annotation on the resources.
	Writer   client.Writer
	Recorder events.EventRecorder
	Log      logr.Logger
	// MaxBody, Rate, Burst, ReceiverRate and ReceiverBurst: the Default* when zero.
	MaxBody              int64
	Rate, ReceiverRate   float64
	Burst, ReceiverBurst int
	Now                  func() time.Time

	once    sync.Once
	all     *rate.Limiter
	mu      sync.Mutex
	perPath map[string]*rate.Limiter
}

func (h *Handler) init() {
	h.once.Do(func() {
		if h.MaxBody == 0 {
			h.MaxBody = DefaultMaxBody
		}
		if h.Rate == 0 {
			h.Rate, h.Burst = DefaultRate, DefaultBurst
		}
		if h.ReceiverRate == 0 {
			h.ReceiverRate, h.ReceiverBurst = DefaultReceiverRate, DefaultReceiverBurst
		}
		if h.Now == nil {
			h.Now = time.Now
		}
		h.all = rate.NewLimiter(rate.Limit(h.Rate), max(h.Burst, 1))
		h.perPath = map[string]*rate.Limiter{}
	})
}

// limiter is the rate limiter of one Receiver's path. Paths are only added for
// Receivers that exist, so the map is as large as the number of Receivers.
func (h *Handler) limiter(path string) *rate.Limiter {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.perPath[path]
	if !ok {
		l = rate.NewLimiter(rate.Limit(h.ReceiverRate), max(h.ReceiverBurst, 1))
		h.perPath[path] = l
	}
	return l
}

// answer is what a call gets back: a status, a message and the result counted.
type answer struct {
	code    int
	result  string
	message string
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h.init()
	a := h.serve(req.Context(), w, req)
	requests.WithLabelValues(a.result).Inc()
	if a.code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	if a.code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(a.code)
	fmt.Fprintln(w, a.message)
}

// serve handles one call: cheap refusals first (method, path, the Receiver, rate),
// then the body, the signature, the event, and only then any write.
func (h *Handler) serve(ctx context.Context, w http.ResponseWriter, req *http.Request) answer {
	if req.Method != http.MethodPost {
		return answer{http.StatusMethodNotAllowed, ResultBadRequest, "only POST"}
	}
	path := req.URL.Path
	if !pathPattern.MatchString(path) {
		return answer{http.StatusNotFound, ResultNotFound, "no such receiver"}
	}
	rcv, err := h.find(ctx, path)
	if err != nil {
		h.Log.Error(err, "finding the receiver", "path", path)
		return answer{http.StatusInternalServerError, ResultError, "receiver lookup failed"}
	}
	if rcv == nil {
		return answer{http.StatusNotFound, ResultNotFound, "no such receiver"}
	}
	log := h.Log.WithValues("receiver", client.ObjectKeyFromObject(rcv))
	if rcv.Spec.Suspend {
		return answer{http.StatusServiceUnavailable, ResultSuspended, "receiver is suspended"}
	}
	// Limited only once the path is a Receiver's, so that a flood of made-up paths
	// (an in-memory lookup each) cannot starve real callers; the limits then bound
	// what calls cost the API server (a Secret read and a patch per resource).
	if !h.limiter(path).Allow() {
		return answer{http.StatusTooManyRequests, ResultRateLimited, "too many calls to this receiver"}
	}
	if !h.all.Allow() {
		return answer{http.StatusTooManyRequests, ResultRateLimited, "too many calls"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, h.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return answer{http.StatusRequestEntityTooLarge, ResultTooLarge, fmt.Sprintf("body over %d bytes", h.MaxBody)}
		}
		return answer{http.StatusBadRequest, ResultBadRequest, "reading the body failed"}
	}
	token, err := ReadToken(ctx, h.Live, rcv)
	if err != nil {
		log.Error(err, "reading the token")
		return answer{http.StatusInternalServerError, ResultError, "receiver has no token"}
	}
	// The path in status may be older than the token: the live token decides, so a
	// rotated token closes the old path at once.
	if WebhookPath(token, rcv.Name, rcv.Namespace) != path {
		return answer{http.StatusNotFound, ResultNotFound, "no such receiver"}
	}
	if err := Verify(rcv.Spec.Type, token, req.Header, body); err != nil {
		h.event(rcv, corev1.EventTypeWarning, notificationv1.InvalidSignatureReason, "refused a call from %s: %v", remote(req), err)
		log.Info("refused a call", "reason", err.Error(), "remote", remote(req))
		if errors.Is(err, ErrNoSignature) {
			return answer{http.StatusUnauthorized, ResultInvalidSignature, "signature required"}
		}
		return answer{http.StatusForbidden, ResultInvalidSignature, "signature does not match"}
	}
	event := Event(rcv.Spec.Type, req.Header)
	if !Wanted(rcv.Spec.Type, event, rcv.Spec.Events) {
		return answer{http.StatusOK, ResultIgnored, fmt.Sprintf("event %q ignored", event)}
	}
	targets, err := Targets(rcv)
	if err != nil {
		h.event(rcv, corev1.EventTypeWarning, notificationv1.ResourceNotAllowedReason, "refused a call: %v", err)
		return answer{http.StatusForbidden, ResultRefused, "receiver names resources it may not reach"}
	}
	n, err := h.request(ctx, targets)
	if err != nil {
		h.event(rcv, corev1.EventTypeWarning, notificationv1.ReconcileRequestedReason, "asked %d objects to reconcile; %v", n, err)
		return answer{http.StatusInternalServerError, ResultError, fmt.Sprintf("asked %d objects to reconcile; some failed", n)}
	}
	h.event(rcv, corev1.EventTypeNormal, notificationv1.ReconcileRequestedReason, "event %q: asked %d objects to reconcile", event, n)
	log.V(1).Info("reconcile requested", "event", event, "objects", n)
	return answer{http.StatusOK, ResultAccepted, fmt.Sprintf("asked %d objects to reconcile", n)}
}

// find is the Receiver served at path, or nil.
func (h *Handler) find(ctx context.Context, path string) (*notificationv1.Receiver, error) {
	var list notificationv1.ReceiverList
	if err := h.Cache.List(ctx, &list, client.MatchingFields{PathIndex: path}); err != nil {
		return nil, err
	}
	for i := range list.Items {
		if r := &list.Items[i]; r.Status.WebhookPath == path && r.DeletionTimestamp.IsZero() {
			return r, nil
		}
	}
	return nil, nil
}

// request sets a new reconcile-requested-at value on every object of targets (all
// in the Receiver's namespace) and says how many it set. An object that does not
// exist is an error, reported after the others are done.
func (h *Handler) request(ctx context.Context, targets []Target) (int, error) {
	at := h.Now().UTC().Format(time.RFC3339Nano)
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{meta.ReconcileRequestedAtAnnotation: at}},
	})
	var errs []error
	n := 0
	for _, t := range targets {
		names := []string{t.Name}
		if t.Name == "*" {
			var list metav1.PartialObjectMetadataList
			list.SetGroupVersionKind(t.GVK.GroupVersion().WithKind(t.GVK.Kind + "List"))
			if err := h.Live.List(ctx, &list, client.InNamespace(t.Namespace), client.MatchingLabels(t.MatchLabels)); err != nil {
				errs = append(errs, fmt.Errorf("listing %s: %w", t.GVK.Kind, err))
				continue
			}
			names = names[:0]
			for _, o := range list.Items {
				names = append(names, o.Name)
			}
		}
		for _, name := range names {
			obj := &metav1.PartialObjectMetadata{}
			obj.SetGroupVersionKind(t.GVK)
			obj.Namespace, obj.Name = t.Namespace, name
			if err := h.Writer.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
				if apierrors.IsNotFound(err) {
					err = fmt.Errorf("%s %s/%s not found", t.GVK.Kind, t.Namespace, name)
				}
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (h *Handler) event(rcv *notificationv1.Receiver, typ, reason, format string, args ...any) {
	if h.Recorder != nil {
		h.Recorder.Eventf(rcv, nil, typ, reason, "Receive", format, args...)
	}
}

// remote is the caller's address for logs and Events (the first X-Forwarded-For
// entry behind a proxy is the caller's claim, so the peer is kept too).
func remote(req *http.Request) string {
	if f := req.Header.Get("X-Forwarded-For"); f != "" {
		first, _, _ := strings.Cut(f, ",")
		return strings.TrimSpace(first) + " via " + req.RemoteAddr
	}
	return req.RemoteAddr
}
