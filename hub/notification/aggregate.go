package notification

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultWindow is how long per-cluster reports of one deployment (drift corrected
// on each spoke) are gathered into one message.
const DefaultWindow = 10 * time.Second

// Aggregator gathers events that differ only in their cluster (same object, reason
// and revision) for a window, then emits one event naming every cluster, so that a
// fleet-wide change is one message per step, not one per cluster.
type Aggregator struct {
	Window time.Duration
	Emit   func(Event)

	mu      sync.Mutex
	pending map[string]*gathered
}

type gathered struct {
	first    Event
	clusters map[string]bool
}

// Add gathers e; the first event of a key starts its window.
func (a *Aggregator) Add(e Event) {
	key := strings.Join([]string{e.Kind, e.Namespace, e.Name, e.Reason, e.Metadata[RevisionKey]}, "\x00")
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = map[string]*gathered{}
	}
	g := a.pending[key]
	if g == nil {
		g = &gathered{first: e, clusters: map[string]bool{}}
		a.pending[key] = g
		time.AfterFunc(or0(a.Window, DefaultWindow), func() { a.flush(key) })
	}
	g.clusters[e.Metadata[ClusterKey]] = true
}

func (a *Aggregator) flush(key string) {
	a.mu.Lock()
	g := a.pending[key]
	delete(a.pending, key)
	a.mu.Unlock()
	if g != nil {
		a.Emit(Merge(g.first, g.clusters))
	}
}

// Merge is the one event standing for first and the same event on other clusters.
func Merge(first Event, clusters map[string]bool) Event {
	names := make([]string, 0, len(clusters))
	for c := range clusters {
		names = append(names, c)
	}
	sort.Strings(names)
	e := first
	e.Metadata = map[string]string{}
	for k, v := range first.Metadata {
		e.Metadata[k] = v
	}
	if len(names) == 1 {
		e.Message = fmt.Sprintf("cluster %s: %s", names[0], first.Message)
		return e
	}
	delete(e.Metadata, ClusterKey)
	e.Metadata[ClustersKey] = strings.Join(names, ",")
	e.Message = fmt.Sprintf("%d clusters (%s); cluster %s: %s", len(names), strings.Join(names, ", "), first.Metadata[ClusterKey], first.Message)
	return e
}
