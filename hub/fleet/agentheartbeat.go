package fleet

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// The hub sets how often agents renew their Lease. Each renewal is one write on the
// hub's API server (about 1 ms of its CPU), so a fleet of n clusters at interval i
// costs n/i writes a second at rest, and those compete with Assignment writes during
// a rollout. AutoHeartbeat keeps that at about AutoHeartbeatRate past
// AutoHeartbeatClusters; the hub announces the interval on each agent's Lease
// (fleetv1.HeartbeatIntervalAnnotation) and judges each cluster's staleness from the
// interval its Lease says it renews at (HeartbeatGrace).
const (
	// AutoHeartbeatBase is the interval of a fleet of up to AutoHeartbeatClusters.
	AutoHeartbeatBase     = 10 * time.Second
	AutoHeartbeatClusters = 500
	// AutoHeartbeatRate is the renewals per second a larger fleet aims at.
	AutoHeartbeatRate = 50
	// AutoHeartbeatStep rounds the interval up, so that it changes in few steps.
	AutoHeartbeatStep = 5 * time.Second
	// AutoHeartbeatMax bounds the interval, and so the time to notice a silent
	// agent: past 3,000 clusters the rate grows again.
	AutoHeartbeatMax = 60 * time.Second
	// DefaultHeartbeatHold is the shortest time between two changes of the interval:
	// each costs one Lease patch and one conflicting renewal per cluster.
	DefaultHeartbeatHold = 30 * time.Second
)

// AgentHeartbeatName is the gauge of the announced interval.
const AgentHeartbeatName = "flotilla_agent_heartbeat_interval_seconds"

var agentHeartbeatGauge = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: AgentHeartbeatName,
	Help: "The interval the hub asks every agent to renew its Lease at (--agent-heartbeat); 0 before it is decided.",
})

func init() { crmetrics.Registry.MustRegister(agentHeartbeatGauge) }

// AutoHeartbeat is the interval for a fleet of n clusters: AutoHeartbeatBase up to
// AutoHeartbeatClusters, then n/AutoHeartbeatRate seconds rounded up to
// AutoHeartbeatStep, at most AutoHeartbeatMax.
func AutoHeartbeat(n int) time.Duration {
	if n <= AutoHeartbeatClusters {
		return AutoHeartbeatBase
	}
	d := time.Duration(n) * time.Second / AutoHeartbeatRate
	if r := d % AutoHeartbeatStep; r != 0 {
		d += AutoHeartbeatStep - r
	}
	return min(max(d, AutoHeartbeatBase), AutoHeartbeatMax)
}

// HeartbeatPolicy chooses the interval the hub announces.
type HeartbeatPolicy struct {
	// Pinned, when positive, is announced whatever the fleet size.
	Pinned time.Duration
}

// Interval is what to announce for a fleet of n clusters while current is announced
// (zero: nothing yet). A longer interval is taken at once; a shorter one only once
// the fleet is a tenth smaller than the size that would keep current, so that a fleet
// hovering at a boundary does not make every agent switch back and forth.
func (p HeartbeatPolicy) Interval(n int, current time.Duration) time.Duration {
	if p.Pinned > 0 {
		return p.Pinned
	}
	want := AutoHeartbeat(n)
	if current <= 0 || want >= current || AutoHeartbeat(n+(n+9)/10) < current {
		return want
	}
	return current
}

// AgentHeartbeat decides the fleet's heartbeat interval from the number of Clusters
// and tells the Cluster controller, which announces it on each agent's Lease.
type AgentHeartbeat struct {
	Client client.Client
	Policy HeartbeatPolicy
	// Hold is the shortest time between two changes; DefaultHeartbeatHold when zero.
	Hold time.Duration
	// Now is time.Now unless a test sets it.
	Now func() time.Time

	mu      sync.Mutex
	current time.Duration
	changed time.Time
	// clusters is how the Cluster controller hears of a change: one event per Cluster.
	clusters chan event.GenericEvent
}

// fleetKey is the one request of the controller: the fleet's size, not a Cluster.
var fleetKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "fleet"}}

// Interval is the interval announced to agents now; zero until it is decided.
func (a *AgentHeartbeat) Interval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current
}

// events is the source of the Cluster controller's wake-ups after a change.
func (a *AgentHeartbeat) events() <-chan event.GenericEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.clusters == nil {
		a.clusters = make(chan event.GenericEvent, 1024)
	}
	return a.clusters
}

// SetupWithManager registers the controller. Only a Cluster created or deleted
// changes the count, so status writes do not wake it.
func (a *AgentHeartbeat) SetupWithManager(mgr ctrl.Manager) error {
	if a.Hold == 0 {
		a.Hold = DefaultHeartbeatHold
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	a.events()
	return ctrl.NewControllerManagedBy(mgr).
		Named("agent-heartbeat").
		Watches(&fleetv1.Cluster{}, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{fleetKey}
		}), builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(event.CreateEvent) bool { return true },
			DeleteFunc:  func(event.DeleteEvent) bool { return true },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Complete(a)
}

// Reconcile counts the Clusters and changes the interval when the policy says so.
func (a *AgentHeartbeat) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var list fleetv1.ClusterList
	// Only the count is used: no copy of the whole fleet.
	if err := a.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	a.mu.Lock()
	current, changed := a.current, a.changed
	a.mu.Unlock()
	decided := current != 0
	if !decided {
		// A restarted hub carries on with what the agents were told, as far as the
		// policy allows, rather than switching the fleet back to a fresh start's value.
		seed, err := a.announced(ctx)
		if err != nil {
			return ctrl.Result{}, err
		}
		current = seed
	}
	want := a.Policy.Interval(len(list.Items), current)
	if decided && want == current {
		return ctrl.Result{}, nil
	}
	if decided {
		if wait := a.Hold - a.Now().Sub(changed); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	a.mu.Lock()
	a.current, a.changed = want, a.Now()
	a.mu.Unlock()
	agentHeartbeatGauge.Set(want.Seconds())
	log.FromContext(ctx).Info("agent heartbeat interval", "interval", want, "previous", current, "clusters", len(list.Items),
		"pinned", a.Policy.Pinned > 0)
	for i := range list.Items {
		select {
		case a.clusters <- event.GenericEvent{Object: &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: list.Items[i].Name}}}:
		case <-ctx.Done():
			return ctrl.Result{}, nil
		}
	}
	return ctrl.Result{}, nil
}

// announced is the interval most agents' Leases carry, zero when none does.
func (a *AgentHeartbeat) announced(ctx context.Context) (time.Duration, error) {
	var leases coordinationv1.LeaseList
	if err := a.Client.List(ctx, &leases, client.UnsafeDisableDeepCopy); err != nil {
		return 0, err
	}
	seen := map[time.Duration]int{}
	var best time.Duration
	for i := range leases.Items {
		l := &leases.Items[i]
		if l.Name != fleetv1.AgentLeaseName || !strings.HasPrefix(l.Namespace, fleetv1.ClusterNamespacePrefix) {
			continue
		}
		d, err := time.ParseDuration(l.Annotations[fleetv1.HeartbeatIntervalAnnotation])
		if err != nil || d <= 0 {
			continue
		}
		seen[d]++
		if seen[d] > seen[best] {
			best = d
		}
	}
	return best, nil
}
