package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/apply"
)

// StateLabel marks the agent's state Secrets; its value is the cluster name.
const StateLabel = "fleet.flotilla.dev/agent-state"

const stateKey = "assignment.json"

// savedAssignment is the agent's record of one Assignment on the spoke: the spec it
// last applied (what the offline mode keeps in place without the hub) and the
// inventory, every object it may have applied. The record, not the hub's status, is
// what prune and release go by; the hub only gets the count.
type savedAssignment struct {
	Namespace string                   `json:"namespace"`
	Name      string                   `json:"name"`
	UID       types.UID                `json:"uid"`
	Spec      fleetv1.AssignmentSpec   `json:"spec"`
	Entries   []fleetv1.InventoryEntry `json:"entries,omitempty"`
}

func (s savedAssignment) assignment() *fleetv1.Assignment {
	a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name, UID: s.UID}, Spec: s.Spec}
	a.Status.AppliedDigest = s.Spec.Artifact.Digest
	return a
}

// specOr is the spec the record was last written with, spec when there is no record:
// a record keeps the spec it last applied until an apply of a new one succeeds.
func (s *savedAssignment) specOr(spec fleetv1.AssignmentSpec) fleetv1.AssignmentSpec {
	if s == nil {
		return spec
	}
	return s.Spec
}

// stateStore reads and writes the state Secrets on the spoke, one per Assignment in
// the agent's namespace: a record on the spoke itself survives restarts of the
// agent's pod and needs no volume.
type stateStore struct {
	client    client.Client
	cluster   string
	namespace string

	mu    sync.Mutex
	saved map[string]string // what was last written or read per Assignment, to skip rewrites
}

// stateName is stable and short whatever the Assignment's name.
func stateName(namespace, name string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	return "flotilla-state-" + hex.EncodeToString(sum[:])[:20]
}

// load returns the record of a, nil when there is none.
func (s *stateStore) load(ctx context.Context, a *fleetv1.Assignment) (*savedAssignment, error) {
	key := a.Namespace + "/" + a.Name
	s.mu.Lock()
	data, ok := s.saved[key]
	s.mu.Unlock()
	if !ok {
		raw, found, err := readRecord(ctx, s.client, s.namespace, a)
		switch {
		case err != nil:
			return nil, fmt.Errorf("reading the agent's record of %s on the spoke: %w", key, err)
		case !found:
			return nil, nil
		}
		data = string(raw)
		s.mu.Lock()
		s.saved[key] = data
		s.mu.Unlock()
	}
	sa := &savedAssignment{}
	if err := json.Unmarshal([]byte(data), sa); err != nil {
		// An unreadable record names nothing to keep; the next save replaces it.
		return nil, nil
	}
	return sa, nil
}

// save records spec and entries as a's, unless that very record is already stored:
// a steady state costs no write.
func (s *stateStore) save(ctx context.Context, a *fleetv1.Assignment, spec fleetv1.AssignmentSpec, entries []fleetv1.InventoryEntry) error {
	data, err := json.Marshal(savedAssignment{Namespace: a.Namespace, Name: a.Name, UID: a.UID, Spec: spec, Entries: entries})
	if err != nil {
		return err
	}
	key := a.Namespace + "/" + a.Name
	s.mu.Lock()
	same := s.saved[key] == string(data)
	s.mu.Unlock()
	if same {
		return nil
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.namespace}}
	if err := s.client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: stateName(a.Namespace, a.Name)}}
	if _, err := controllerutil.CreateOrUpdate(ctx, s.client, sec, func() error {
		sec.Labels = map[string]string{StateLabel: s.cluster}
		sec.Type = corev1.SecretTypeOpaque
		sec.Data = map[string][]byte{stateKey: data}
		return nil
	}); err != nil {
		s.mu.Lock()
		delete(s.saved, key) // what is stored is not known now: read it again next time
		s.mu.Unlock()
		return fmt.Errorf("recording the inventory of %s on the spoke: %w", key, err)
	}
	s.mu.Lock()
	s.saved[key] = string(data)
	s.mu.Unlock()
	return nil
}

// remove forgets a released Assignment.
func (s *stateStore) remove(ctx context.Context, a *fleetv1.Assignment) error {
	s.mu.Lock()
	delete(s.saved, a.Namespace+"/"+a.Name)
	s.mu.Unlock()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: stateName(a.Namespace, a.Name)}}
	return client.IgnoreNotFound(s.client.Delete(ctx, sec))
}

// ReadInventory reads, with c (a client of the spoke allowed to get Secrets in the
// agent's namespace), the inventory the agent of that spoke records for Assignment
// a: found is false when the agent keeps no record of it (an agent older than the
// record, or nothing applied yet), and the caller may then look at a.status.entries,
// which agents wrote until the record took their place.
func ReadInventory(ctx context.Context, c client.Reader, agentNamespace string, a *fleetv1.Assignment) (entries []fleetv1.InventoryEntry, found bool, err error) {
	raw, found, err := readRecord(ctx, c, agentNamespace, a)
	if err != nil || !found {
		return nil, false, err
	}
	var sa savedAssignment
	if err := json.Unmarshal(raw, &sa); err != nil {
		return nil, false, fmt.Errorf("the agent's record %s/%s does not parse: %w", agentNamespace, stateName(a.Namespace, a.Name), err)
	}
	if sa.Namespace != a.Namespace || sa.Name != a.Name {
		return nil, false, nil
	}
	return sa.Entries, true, nil
}

// readRecord reads the record Secret of a in the agent's namespace ns; found is
// false when there is none.
func readRecord(ctx context.Context, c client.Reader, ns string, a *fleetv1.Assignment) (data []byte, found bool, err error) {
	sec := &corev1.Secret{}
	err = c.Get(ctx, types.NamespacedName{Namespace: ns, Name: stateName(a.Namespace, a.Name)}, sec)
	switch {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return sec.Data[stateKey], true, nil
}

func (s *stateStore) list(ctx context.Context) ([]savedAssignment, error) {
	secs := &corev1.SecretList{}
	if err := s.client.List(ctx, secs, client.InNamespace(s.namespace), client.MatchingLabels{StateLabel: s.cluster}); err != nil {
		return nil, err
	}
	out := make([]savedAssignment, 0, len(secs.Items))
	for _, sec := range secs.Items {
		var sa savedAssignment
		if err := json.Unmarshal(sec.Data[stateKey], &sa); err != nil {
			continue // an unreadable record names nothing to keep
		}
		out = append(out, sa)
	}
	return out, nil
}

// offline keeps the spoke as last declared while the hub cannot be reached: every
// interval it asks the hub for its version and, when that fails, runs the drift
// check of every recorded Assignment from the spoke's own records and the artifact
// cache. It runs beside the manager, not in it, because a manager whose hub cache
// cannot sync never starts its other runnables. It never deletes: a hub that does
// not answer is not an Assignment that was deleted.
type offline struct {
	r        *reconciler
	store    *stateStore
	hub      discovery.ServerVersionInterface
	interval time.Duration
	log      logr.Logger
}

func newOffline(r *reconciler, store *stateStore, hubConfig *rest.Config, interval time.Duration, log logr.Logger) (*offline, error) {
	cfg := rest.CopyConfig(hubConfig)
	// A probe, not a download: give up quickly.
	cfg.Timeout = 5 * time.Second
	d, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &offline{r: r, store: store, hub: d, interval: interval, log: log}, nil
}

func (o *offline) run(ctx context.Context) {
	t := time.NewTicker(o.interval)
	defer t.Stop()
	wasOffline := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := o.hub.ServerVersion(); err == nil {
			if wasOffline {
				o.log.Info("the hub answers again")
				wasOffline = false
			}
			continue
		} else if !wasOffline {
			o.log.Info("the hub does not answer: keeping the spoke as last applied", "error", err.Error())
			wasOffline = true
		}
		saved, err := o.store.list(ctx)
		if err != nil {
			o.log.Error(err, "reading the agent's records on the spoke")
			continue
		}
		for _, sa := range saved {
			o.correct(ctx, sa.assignment())
		}
	}
}

// correct runs one drift check of a recorded Assignment, as its mode says.
func (o *offline) correct(ctx context.Context, a *fleetv1.Assignment) {
	log := o.log.WithValues("assignment", a.Namespace+"/"+a.Name)
	mode := driftMode(a)
	if mode == meta.DriftDisabled || a.Spec.Helm != nil {
		// A Helm release keeps running on its own while the hub is away; its drift
		// is checked again once the hub answers.
		return
	}
	if a.Spec.Suspend {
		// A suspended deployment is compared, never corrected.
		mode = meta.DriftWarn
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout(a))
	defer cancel()
	files, err := o.r.fetcher.Fetch(ctx, a)
	if err != nil {
		log.Error(err, "artifact not in the cache")
		return
	}
	objs, err := apply.Parse(files)
	if err == nil {
		objs, err = o.r.transform(ctx, a, objs)
	}
	if err != nil {
		log.Error(err, "preparing manifests")
		return
	}
	c, err := o.r.spoke.clientFor(serviceAccountUser(a))
	if err != nil {
		log.Error(err, "spoke client")
		return
	}
	res, err := apply.New(c, FieldManager(a)).Apply(ctx, objs, apply.Options{
		Owner: a.Namespace + "/" + a.Name, TargetNamespace: a.Spec.TargetNamespace, Force: a.Spec.Force, Adopt: a.Spec.Adopt,
		DriftCheck: true, WarnOnly: mode == meta.DriftWarn,
	})
	if err != nil {
		log.Error(err, "drift correction while the hub is away")
	}
	if d := res.Drifted(); len(d) > 0 {
		observeDrift(len(d), mode == meta.DriftWarn)
		log.Info("drift found while the hub is away: "+driftMessage(d, "found"), "mode", mode)
	}
}
