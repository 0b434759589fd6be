package notification

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// Metric names.
const (
	MessagesName = "flotilla_notification_messages_total"
	RetriesName  = "flotilla_notification_retries_total"
)

var (
	messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MessagesName,
		Help: "Messages handed to Providers, by provider type and result (sent, failed after every retry, dropped from a full queue, skipped).",
	}, []string{"type", "result"})
	retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RetriesName, Help: "Delivery attempts that failed and were tried again, by provider type.",
	}, []string{"type"})
)

func init() { crmetrics.Registry.MustRegister(messages, retries) }

// Delivery defaults.
const (
	DefaultQueueSize    = 256
	DefaultMaxAttempts  = 8
	DefaultFirstBackoff = time.Second
	DefaultMaxBackoff   = time.Minute
	// DefaultRate is the messages per second one Provider is sent at most
	// (Slack's incoming webhooks allow one per second), DefaultBurst ahead of it.
	DefaultRate  = 1.0
	DefaultBurst = 10
	// DefaultIdleTimeout: see Dispatcher.IdleTimeout.
	DefaultIdleTimeout = time.Minute
)

// Resolver reads a Provider when a message for it is sent: the Target, the HTTP
// client to send with (its proxy and CA), and whether it is suspended.
type Resolver func(ctx context.Context, provider types.NamespacedName) (t Target, c *http.Client, suspended bool, err error)

// Dispatcher delivers messages off the reconcile path: one FIFO queue per Provider
// (so one Provider's messages arrive in order, and a Provider that is down holds up
// no other), bounded (the oldest message goes when it is full), rate limited, each
// message tried again with exponential backoff until MaxAttempts.
type Dispatcher struct {
	Resolve Resolver
	Log     logr.Logger
	// Zero values take the defaults above.
	QueueSize                int
	MaxAttempts              int
	FirstBackoff, MaxBackoff time.Duration
	Rate                     float64
	Burst                    int
	// IdleTimeout is how long an empty queue waits for a message before it and its
	// goroutine go (a deleted Provider's among them); DefaultIdleTimeout when zero.
	// Longer than the rate limiter takes to refill its burst, so that going and
	// coming back grants a Provider nothing its limiter would not.
	IdleTimeout time.Duration

	mu     sync.Mutex
	ctx    context.Context
	queues map[types.NamespacedName]*queue
}

type queue struct {
	mu      sync.Mutex
	items   []Message
	wake    chan struct{}
	limiter *rate.Limiter
}

// Start runs the Dispatcher until ctx is done; messages handed over before are
// kept and sent once it runs.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	for key, q := range d.queues {
		go d.run(ctx, key, q)
	}
	d.mu.Unlock()
}

// Send queues a message for a Provider and returns at once.
func (d *Dispatcher) Send(provider types.NamespacedName, m Message) {
	// The queue is filled under d.mu, so that an idle queue's goroutine, which
	// removes it under d.mu when it is still empty, never drops what was just sent.
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.queues == nil {
		d.queues = map[types.NamespacedName]*queue{}
	}
	q := d.queues[provider]
	if q == nil {
		q = &queue{wake: make(chan struct{}, 1), limiter: rate.NewLimiter(rate.Limit(or0(d.Rate, DefaultRate)), or0(d.Burst, DefaultBurst))}
		d.queues[provider] = q
		if d.ctx != nil {
			go d.run(d.ctx, provider, q)
		}
	}
	q.mu.Lock()
	if len(q.items) >= or0(d.QueueSize, DefaultQueueSize) {
		d.Log.Info("notification queue full: dropping the oldest message", "provider", provider.String(), "reason", q.items[0].Reason)
		messages.WithLabelValues("", "dropped").Inc()
		q.items = q.items[1:]
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// queued is how many Providers have a queue (and a goroutine) now.
func (d *Dispatcher) queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queues)
}

// retire removes q when it is still empty, under d.mu (see Send).
func (d *Dispatcher) retire(provider types.NamespacedName, q *queue) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 || d.queues[provider] != q {
		return false
	}
	delete(d.queues, provider)
	return true
}

func (d *Dispatcher) run(ctx context.Context, provider types.NamespacedName, q *queue) {
	idle := or0(d.IdleTimeout, DefaultIdleTimeout)
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			case <-time.After(idle):
				if d.retire(provider, q) {
					return
				}
				continue
			}
		}
		// Taken off the queue before it is sent, so that a full queue dropping its
		// oldest entry never drops this one's successor instead.
		m := q.items[0]
		q.items = q.items[1:]
		q.mu.Unlock()
		if err := q.limiter.Wait(ctx); err != nil {
			return
		}
		d.deliver(ctx, provider, m)
	}
}

// deliver sends one message, trying again with backoff while the failure may pass.
func (d *Dispatcher) deliver(ctx context.Context, provider types.NamespacedName, m Message) {
	backoff := or0(d.FirstBackoff, DefaultFirstBackoff)
	attempts := or0(d.MaxAttempts, DefaultMaxAttempts)
	log := d.Log.WithValues("provider", provider.String(), "reason", m.Reason, "kind", m.Kind, "name", m.Name)
	typ := ""
	for attempt := 1; ; attempt++ {
		t, client, suspended, err := d.Resolve(ctx, provider)
		retry := true
		if err == nil {
			typ = t.Type
			if suspended {
				messages.WithLabelValues(typ, "skipped").Inc()
				return
			}
			retry, err = send(ctx, client, t, m)
			if err == nil {
				return
			}
		}
		if !retry || attempt >= attempts {
			log.Error(err, "notification not delivered", "attempts", attempt)
			messages.WithLabelValues(typ, "failed").Inc()
			return
		}
		retries.WithLabelValues(typ).Inc()
		log.V(1).Info("notification delivery failed; trying again", "error", err.Error(), "attempt", attempt, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, or0(d.MaxBackoff, DefaultMaxBackoff))
	}
}

// send makes one attempt; retry says whether a failure may pass (the service is
// unreachable, overloaded or failing) or will not (the request is refused).
func send(ctx context.Context, c *http.Client, t Target, m Message) (retry bool, err error) {
	req, err := Request(ctx, t, m)
	if err != nil {
		return false, err
	}
	if req == nil {
		messages.WithLabelValues(t.Type, "skipped").Inc()
		return false, nil
	}
	resp, err := c.Do(req)
	if err != nil {
		// A tenant's Provider naming an address tenants may not reach: trying again
		// would be refused again (the Provider's status says so).
		var ref *egress.Refusal
		return !errors.As(err, &ref), err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		messages.WithLabelValues(t.Type, "sent").Inc()
		return false, nil
	}
	// The host only: a webhook URL is often its own secret.
	err = fmt.Errorf("%s answered %s: %s", req.URL.Host, resp.Status, body)
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout, err
}

func or0[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
