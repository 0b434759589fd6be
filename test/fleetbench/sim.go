package fleetbench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/spoke/apply"
	"github.com/flotilla-dev/flotilla/spoke/fetch"
)

// simCluster is the hub side of one agent: what the hub sees of a cluster. It keeps
// its own credential and connection, one watch of its hub namespace, renews its
// Lease, downloads and verifies artifacts with spoke/fetch and writes Assignment
// status as spoke/agent does. Objects go to the sink instead of a spoke.
type simCluster struct {
	name, ns  string
	c         client.WithWatch
	fetcher   *fetch.Fetcher
	sink      *sink
	heartbeat time.Duration // the agent's own interval (--heartbeat-interval)
	errs      *errorLog
	lease     *coordinationv1.Lease // what the last renewal returned; the beat goroutine's own
	every     time.Duration         // the interval renewals run at: the hub's announced one when adopted; the beat goroutine's own

	mu       sync.Mutex
	pending  map[string]*fleetv1.Assignment // latest seen, by name
	inflight map[string]bool                // names a worker is applying
	wake     chan struct{}
	applied  map[string]appliedRecord // by Assignment name
	readyAt  map[string]time.Time     // revision → when every Assignment ran it
	want     int                      // Assignments expected per revision
}

type appliedRecord struct {
	uid        types.UID
	generation int64
	revision   string
}

// newSimCluster builds a cluster's clients from its registration answer.
func newSimCluster(resp *registration.Response, dir string, heartbeat time.Duration, s *sink, errs *errorLog) (*simCluster, error) {
	cfg := &rest.Config{
		Host:            resp.Server,
		BearerToken:     resp.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: resp.CAData},
		UserAgent:       "flotilla-agent-sim/" + resp.Cluster,
		// A dialer of its own makes client-go give this cluster its own connection,
		// as a real agent has, instead of sharing one cached transport.
		Dial: (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: api.NewScheme()})
	if err != nil {
		return nil, err
	}
	keys, err := artifact.ParsePublicKeys([]byte(resp.TrustedKeys))
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(resp.ArtifactCA)) {
		return nil, errors.New("artifact CA is not PEM")
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	f, err := fetch.New(fetch.Options{
		Cluster: resp.Cluster, ArtifactURL: resp.ArtifactURL, Dir: dir, TrustedKeys: keys,
		Transport: &bearer{base: base, token: resp.Token},
	})
	if err != nil {
		return nil, err
	}
	return &simCluster{
		name: resp.Cluster, ns: resp.Namespace, c: c, fetcher: f, sink: s, heartbeat: heartbeat, errs: errs,
		pending: map[string]*fleetv1.Assignment{}, inflight: map[string]bool{}, wake: make(chan struct{}, simWorkers),
		applied: map[string]appliedRecord{}, readyAt: map[string]time.Time{},
	}, nil
}

// bearer sends the agent's hub credential to the artifact server, as the agent's
// artifact transport does (spoke/fetch refuses any other URL before a request).
type bearer struct {
	base  http.RoundTripper
	token string
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(req)
}

// run renews the Lease, watches the namespace and applies until ctx is done.
func (s *simCluster) run(ctx context.Context) {
	go s.beat(ctx)
	for range simWorkers {
		go s.work(ctx)
	}
	s.watch(ctx)
}

// beat renews the Lease as spoke/agent's heartbeat does: an Update of the Lease the
// last renewal returned, reading it (uncached Get, then Update or Create) only the
// first time or after a conflict, and renewing at the interval the hub announces on
// the Lease (fleetv1.HeartbeatIntervalAnnotation, within its bounds) from the renewal
// that first sees it. The first beat comes at a random point of the interval, so the
// fleet's renewals spread evenly as real agents' do.
func (s *simCluster) beat(ctx context.Context) {
	first := true
	for {
		if err := s.renew(ctx); err != nil && ctx.Err() == nil {
			s.errs.add("lease", err)
		}
		wait := s.interval()
		if first {
			first = false
			wait = time.Duration(rand.Int64N(int64(s.heartbeat)))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// interval is what the beat waits between renewals now.
func (s *simCluster) interval() time.Duration {
	if s.every > 0 {
		return s.every
	}
	return s.heartbeat
}

// adopt takes the hub's announced interval from the Lease when it is within bounds,
// and the agent's own otherwise, as spoke/agent's heartbeat does.
func (s *simCluster) adopt(l *coordinationv1.Lease) {
	s.every = s.heartbeat
	if d, err := time.ParseDuration(l.Annotations[fleetv1.HeartbeatIntervalAnnotation]); err == nil &&
		d >= fleetv1.MinHeartbeatInterval && d <= fleetv1.MaxHeartbeatInterval {
		s.every = d
	}
}

func (s *simCluster) renew(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	fill := func(l *coordinationv1.Lease) {
		// Merged into what the Lease has, so that the hub's announcement stays.
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Labels[fleetv1.ClusterLabel] = s.name
		l.Annotations[fleetv1.AgentVersionAnnotation] = "bench"
		l.Annotations[fleetv1.KubernetesVersionAnnotation] = "v1.36.0-sim"
		l.Spec.HolderIdentity = ptr.To(s.name)
		l.Spec.LeaseDurationSeconds = ptr.To(int32(3 * s.interval() / time.Second))
		l.Spec.RenewTime = &now
	}
	if s.lease != nil {
		lease := s.lease.DeepCopy()
		fill(lease)
		err := s.c.Update(ctx, lease)
		if err == nil {
			s.lease = lease
			s.adopt(lease)
			return nil
		}
		s.lease = nil
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	lease := &coordinationv1.Lease{}
	err := s.c.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: fleetv1.AgentLeaseName}, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: fleetv1.AgentLeaseName}}
		lease.Spec.AcquireTime = &now
		s.adopt(lease)
		fill(lease)
		err = s.c.Create(ctx, lease)
	} else if err == nil {
		// The Lease as read carries the hub's announcement: this renewal promises it.
		s.adopt(lease)
		fill(lease)
		err = s.c.Update(ctx, lease)
	}
	if err == nil {
		s.lease = lease
		s.adopt(lease)
	}
	return err
}

// watch lists the namespace's Assignments and then watches them, as an informer
// does: a watch the API server closes is opened again from the last resource version
// seen; only an error (the version expired, say) lists again.
func (s *simCluster) watch(ctx context.Context) {
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			var list fleetv1.AssignmentList
			if err := s.c.List(ctx, &list, client.InNamespace(s.ns)); err != nil {
				if ctx.Err() == nil {
					s.errs.add("list", err)
					time.Sleep(time.Second)
				}
				continue
			}
			for i := range list.Items {
				s.enqueue(&list.Items[i])
			}
			rv = list.ResourceVersion
		}
		w, err := s.c.Watch(ctx, &fleetv1.AssignmentList{}, client.InNamespace(s.ns),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			if ctx.Err() == nil {
				s.errs.add("watch", err)
				time.Sleep(time.Second)
			}
			rv = ""
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				rv = ""
				break
			}
			a, ok := ev.Object.(*fleetv1.Assignment)
			if !ok {
				continue
			}
			rv = a.ResourceVersion
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				s.enqueue(a)
			}
		}
		w.Stop()
	}
}

// enqueue wakes the worker for an Assignment whose spec the cluster has not acted
// on: its own status writes come back as events and are dropped here, as the agent's
// predicate drops them.
func (s *simCluster) enqueue(a *fleetv1.Assignment) {
	s.mu.Lock()
	rec, ok := s.applied[a.Name]
	if ok && rec.uid == a.UID && rec.generation == a.Generation && a.DeletionTimestamp == nil {
		s.mu.Unlock()
		return
	}
	s.pending[a.Name] = a
	s.mu.Unlock()
	s.signal()
}

// simWorkers is how many Assignments a simulated cluster applies at once, as
// spoke/agent's DefaultMaxConcurrentReconciles.
const simWorkers = agent.DefaultMaxConcurrentReconciles

// work applies pending Assignments, one at a time per Assignment and simWorkers at
// once, as the agent's controller does.
func (s *simCluster) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			var a *fleetv1.Assignment
			for name, p := range s.pending {
				if !s.inflight[name] {
					a = p
					break
				}
			}
			if a != nil {
				delete(s.pending, a.Name)
				s.inflight[a.Name] = true
			}
			more := len(s.pending) > 0
			s.mu.Unlock()
			if a == nil {
				break
			}
			if more {
				s.signal() // another worker takes the next one
			}
			err := s.reconcile(ctx, a)
			s.mu.Lock()
			delete(s.inflight, a.Name)
			if err != nil && ctx.Err() == nil {
				s.errs.add("apply", err)
				if _, newer := s.pending[a.Name]; !newer {
					s.pending[a.Name] = a
				}
			}
			s.mu.Unlock()
			if err != nil {
				time.Sleep(time.Second)
			}
		}
	}
}

func (s *simCluster) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// reconcile does for one Assignment what spoke/agent's reconcile does, against the
// hub: take it from the watch (the agent reads its informer cache), verify the
// statement, download and check the artifact, parse its objects, "apply" them to the
// sink and patch the status (an Event only for a failure, as the agent records).
func (s *simCluster) reconcile(ctx context.Context, a *fleetv1.Assignment) error {
	name := a.Name
	a = a.DeepCopy()
	s.mu.Lock()
	rec, ok := s.applied[name]
	s.mu.Unlock()
	if ok && rec.uid == a.UID && rec.generation == a.Generation && a.DeletionTimestamp == nil {
		return nil
	}
	before := a.DeepCopy()
	rev := a.Spec.Artifact.Revision
	if a.DeletionTimestamp != nil {
		if conditions.IsTrue(a, meta.ReleasedCondition) {
			return nil
		}
		s.sink.forget(s.name, name)
		a.Status.Entries, a.Status.Inventory = nil, 0
		conditions.Set(a, meta.ReleasedCondition, metav1.ConditionTrue, meta.SucceededReason, "orphaned (simulated cluster)")
		return client.IgnoreNotFound(s.c.Status().Patch(ctx, a, client.MergeFrom(before)))
	}
	files, err := s.fetcher.Fetch(ctx, a)
	if err != nil {
		if fetch.IsVerificationError(err) {
			msg := fmt.Sprintf("revision %s not applied: %v", rev, err)
			a.Status.Message = msg
			conditions.MarkStalled(a, meta.VerificationFailedReason, msg)
			s.event(ctx, a, corev1.EventTypeWarning, meta.VerificationFailedReason, msg)
			_ = s.c.Status().Patch(ctx, a, client.MergeFrom(before))
		}
		return fmt.Errorf("%s/%s: %w", s.ns, name, err)
	}
	objs, err := apply.Parse(files)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", s.ns, name, err)
	}
	s.sink.record(s.name, name, a.Spec.Artifact.Digest, len(objs))
	msg := fmt.Sprintf("applied revision %s: %d objects (%d configured)", rev, len(objs), len(objs))
	a.Status.AppliedDigest, a.Status.AppliedRevision = a.Spec.Artifact.Digest, rev
	// As spoke/agent: the hub gets the count, the list stays on the spoke.
	a.Status.Entries, a.Status.Inventory = nil, int32(len(objs))
	a.Status.ObservedGeneration = a.Generation
	a.Status.Message = msg
	// A success is in the status only, as spoke/agent records no Event for it.
	conditions.MarkReady(a, meta.SucceededReason, msg)
	if err := s.c.Status().Patch(ctx, a, client.MergeFrom(before)); err != nil {
		return client.IgnoreNotFound(err)
	}
	done := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied[name] = appliedRecord{uid: a.UID, generation: a.Generation, revision: rev}
	if _, seen := s.readyAt[rev]; !seen && s.want > 0 {
		n := 0
		for _, r := range s.applied {
			if r.revision == rev {
				n++
			}
		}
		if n >= s.want {
			s.readyAt[rev] = done
		}
	}
	return nil
}

// event records a failure on the hub as the agent's event recorder does.
func (s *simCluster) event(ctx context.Context, a *fleetv1.Assignment, typ, reason, msg string) {
	now := metav1.NowMicro()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: fmt.Sprintf("%s.%x", a.Name, time.Now().UnixNano())},
		EventTime:  now, ReportingController: "flotilla-agent", ReportingInstance: "flotilla-agent-" + s.name,
		Action: "Apply", Reason: reason, Type: typ, Note: msg,
		Regarding: corev1ObjectReference(a),
	}
	if err := s.c.Create(ctx, ev); err != nil && ctx.Err() == nil {
		s.errs.add("event", err)
	}
}

func (s *simCluster) setWant(n int) {
	s.mu.Lock()
	s.want = n
	s.mu.Unlock()
}

// ready returns when every Assignment of the cluster first ran revision.
func (s *simCluster) ready(revision string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.readyAt[revision]
	return t, ok
}

// sink records what each cluster would have applied.
type sink struct {
	mu      sync.Mutex
	objects map[string]map[string]sinkEntry // cluster → Assignment → what
	applies atomic.Int64
}

type sinkEntry struct {
	digest  string
	objects int
}

func newSink() *sink { return &sink{objects: map[string]map[string]sinkEntry{}} }

func (s *sink) record(cluster, assignment, digest string, objects int) {
	s.applies.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.objects[cluster]
	if m == nil {
		m = map[string]sinkEntry{}
		s.objects[cluster] = m
	}
	m[assignment] = sinkEntry{digest: digest, objects: objects}
}

func (s *sink) forget(cluster, assignment string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects[cluster], assignment)
}

// digests returns the distinct artifacts the fleet runs.
func (s *sink) digests() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, m := range s.objects {
		for _, e := range m {
			out[e.digest] = true
		}
	}
	return out
}

// errorLog keeps a count of errors by kind and the last of each.
type errorLog struct {
	mu    sync.Mutex
	count map[string]int
	last  map[string]error
}

func (l *errorLog) add(kind string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == nil {
		l.count, l.last = map[string]int{}, map[string]error{}
	}
	l.count[kind]++
	l.last[kind] = err
}

func (l *errorLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.count) == 0 {
		return "none"
	}
	out := ""
	for k, n := range l.count {
		out += fmt.Sprintf("%s: %d (last: %v); ", k, n, l.last[k])
	}
	return out
}
