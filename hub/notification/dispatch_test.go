package notification

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

// recorder is a generic webhook that fails the first failures requests.
type recorder struct {
	mu       sync.Mutex
	failures int
	status   int
	got      []string
	times    []time.Time
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times = append(r.times, time.Now())
	if r.failures > 0 {
		r.failures--
		w.WriteHeader(r.status)
		return
	}
	var p GenericPayload
	_ = json.NewDecoder(req.Body).Decode(&p)
	r.got = append(r.got, p.Reason)
}

func (r *recorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func dispatcher(addr string, d *Dispatcher) *Dispatcher {
	d.Log = logr.Discard()
	d.Resolve = func(context.Context, types.NamespacedName) (Target, *http.Client, bool, error) {
		return Target{Type: notificationv1.GenericProvider, Address: addr}, http.DefaultClient, false, nil
	}
	return d
}

func msg(reason string) Message {
	return Message{Event: Event{Kind: "Kustomization", Namespace: "ns", Name: "app", Reason: reason, Message: reason}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDispatcherRetriesInOrder(t *testing.T) {
	rec := &recorder{failures: 3, status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	d := dispatcher(srv.URL, &Dispatcher{FirstBackoff: 20 * time.Millisecond, Rate: 1000})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Start(ctx)
	key := types.NamespacedName{Namespace: "ns", Name: "p"}
	sent0, retries0 := testutil.ToFloat64(messages.WithLabelValues("generic", "sent")), testutil.ToFloat64(retries.WithLabelValues("generic"))
	start := time.Now()
	for _, r := range []string{"one", "two", "three"} {
		d.Send(key, msg(r)) // returns at once though the service is down
	}
	if e := time.Since(start); e > 50*time.Millisecond {
		t.Errorf("Send blocked for %s", e)
	}
	waitFor(t, "three messages", func() bool { return len(rec.received()) == 3 })
	if got := rec.received(); got[0] != "one" || got[1] != "two" || got[2] != "three" {
		t.Errorf("order %v, want one two three", got)
	}
	if d := testutil.ToFloat64(messages.WithLabelValues("generic", "sent")) - sent0; d != 3 {
		t.Errorf("sent counter moved by %v, want 3", d)
	}
	if d := testutil.ToFloat64(retries.WithLabelValues("generic")) - retries0; d != 3 {
		t.Errorf("retries counter moved by %v, want 3", d)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Backoff doubles: 20, 40, 80 ms between the failed attempts.
	if gap := rec.times[3].Sub(rec.times[2]); gap < 70*time.Millisecond {
		t.Errorf("third retry after %s, want about 80ms (backoff doubles)", gap)
	}
}

func TestDispatcherGivesUpOnRefusal(t *testing.T) {
	rec := &recorder{failures: 1, status: http.StatusBadRequest}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	d := dispatcher(srv.URL, &Dispatcher{FirstBackoff: time.Millisecond, Rate: 1000})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Start(ctx)
	key := types.NamespacedName{Namespace: "ns", Name: "p"}
	failed0 := testutil.ToFloat64(messages.WithLabelValues("generic", "failed"))
	d.Send(key, msg("refused"))
	d.Send(key, msg("next"))
	waitFor(t, "the next message", func() bool { return len(rec.received()) == 1 })
	if got := rec.received(); got[0] != "next" {
		t.Errorf("got %v: a 400 was tried again", got)
	}
	if d := testutil.ToFloat64(messages.WithLabelValues("generic", "failed")) - failed0; d != 1 {
		t.Errorf("failed counter moved by %v, want 1", d)
	}
}

func TestDispatcherRateLimitAndBound(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	d := dispatcher(srv.URL, &Dispatcher{Rate: 20, Burst: 1, QueueSize: 4})
	key := types.NamespacedName{Namespace: "ns", Name: "p"}
	// Queued before the dispatcher runs: the oldest two of six are dropped.
	for _, r := range []string{"a", "b", "c", "d", "e", "f"} {
		d.Send(key, msg(r))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	d.Start(ctx)
	waitFor(t, "four messages", func() bool { return len(rec.received()) == 4 })
	if got := rec.received(); got[0] != "c" || got[3] != "f" {
		t.Errorf("got %v, want c d e f", got)
	}
	// 20 per second, burst 1: the fourth goes at about 150ms.
	if e := time.Since(start); e < 140*time.Millisecond {
		t.Errorf("four messages in %s: not rate limited", e)
	}
}

func TestDispatcherFullQueueDropsTheOldestWaiting(t *testing.T) {
	release := make(chan struct{})
	inFlight := make(chan struct{}, 1)
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(rec.received()) == 0 {
			select {
			case inFlight <- struct{}{}:
				<-release
			default:
			}
		}
		rec.ServeHTTP(w, r)
	}))
	defer srv.Close()
	d := dispatcher(srv.URL, &Dispatcher{Rate: 1000, QueueSize: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Start(ctx)
	key := types.NamespacedName{Namespace: "ns", Name: "p"}
	d.Send(key, msg("a"))
	<-inFlight // a is being sent
	for _, r := range []string{"b", "c", "d", "e", "f"} {
		d.Send(key, msg(r))
	}
	close(release)
	waitFor(t, "five messages", func() bool { return len(rec.received()) == 5 })
	time.Sleep(50 * time.Millisecond)
	if got := rec.received(); strings.Join(got, "") != "acdef" {
		t.Errorf("got %v, want a c d e f (b, the oldest waiting, dropped)", got)
	}
}

// TestDispatcherRetiresIdleQueues: a Provider's queue and goroutine go once idle (a
// deleted Provider's would otherwise stay until the hub stops), and a later message
// makes a new one and is delivered.
func TestDispatcherRetiresIdleQueues(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	d := dispatcher(srv.URL, &Dispatcher{Rate: 1000, IdleTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Start(ctx)
	for i, p := range []string{"a", "b", "c"} {
		d.Send(types.NamespacedName{Namespace: "ns", Name: p}, msg(p))
		if n := d.queued(); n != i+1 {
			t.Fatalf("%d queues after sending to %d Providers", n, i+1)
		}
	}
	waitFor(t, "three messages", func() bool { return len(rec.received()) == 3 })
	waitFor(t, "the idle queues to go", func() bool { return d.queued() == 0 })
	d.Send(types.NamespacedName{Namespace: "ns", Name: "a"}, msg("again"))
	waitFor(t, "a message after the queue went", func() bool { return len(rec.received()) == 4 })
	if got := rec.received()[3]; got != "again" {
		t.Errorf("fourth message %q, want again", got)
	}
}
