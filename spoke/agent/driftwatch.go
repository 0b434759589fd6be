package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/apply"
)

// fieldsAnnotation is where the watch's cache keeps, instead of managedFields, a
// digest of every manager's entry except the status subresource's: a change of it
// is a change someone made to what the object declares, not the status a
// controller reports.
const fieldsAnnotation = "agent.flotilla.dev/fields"

// driftWatch notices changes to what the agent applied, so a hand edit is checked
// within seconds rather than at the next resync. It keeps one metadata-only informer
// per kind the agent has applied, cluster-wide, of the objects that carry the agent's
// label, and of each object only its name, UID, resourceVersion, owning Assignment
// and a digest of its managed fields: memory stays flat whatever the objects hold.
//
// A changed or deleted object names its Assignment (apply.AssignmentAnnotation). The
// watch records it as a suspect of that Assignment and wakes the Assignment's
// reconcile, which checks the suspects only. The agent's own writes are recognised
// by the resourceVersion its apply returned, so correcting drift does not loop.
type driftWatch struct {
	ctx          context.Context
	client       metadata.Interface
	mapper       apimeta.RESTMapper
	hubNamespace string
	log          logr.Logger
	wake         chan event.GenericEvent

	mu        sync.Mutex
	informers map[schema.GroupVersionResource]bool
	// written is the resourceVersion of each object as the agent last wrote or found
	// it, by Assignment key and inventory ID.
	written map[string]map[string]string
	// suspects are the objects seen changed, by Assignment key and inventory ID,
	// with the resourceVersion seen ("" when deleted).
	suspects map[string]map[string]string
}

func newDriftWatch(ctx context.Context, cfg *rest.Config, mapper apimeta.RESTMapper, hubNamespace string, log logr.Logger) (*driftWatch, error) {
	c, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &driftWatch{
		ctx: ctx, client: c, mapper: mapper, hubNamespace: hubNamespace, log: log,
		wake:      make(chan event.GenericEvent, 256),
		informers: map[schema.GroupVersionResource]bool{},
		written:   map[string]map[string]string{},
		suspects:  map[string]map[string]string{},
	}, nil
}

// source feeds the Assignment controller the Assignments whose objects changed.
func (w *driftWatch) source() source.Source {
	return source.Channel(w.wake, &handler.EnqueueRequestForObject{})
}

// applied records what an apply of Assignment key wrote or found, and watches the
// kinds it holds. full says the apply covered every object (not a check of
// suspects), so what it did not name is forgotten.
func (w *driftWatch) applied(key string, changes []apply.Change, full bool) {
	w.mu.Lock()
	m := w.written[key]
	if m == nil || full {
		m = make(map[string]string, len(changes))
		w.written[key] = m
	}
	kinds := map[schema.GroupVersionKind]bool{}
	for _, c := range changes {
		if c.Action == apply.Skipped {
			continue
		}
		if c.ResourceVersion != "" {
			m[c.Ref.ID()] = c.ResourceVersion
		}
		kinds[c.Ref.GroupVersionKind()] = true
	}
	w.mu.Unlock()
	for gvk := range kinds {
		w.watch(gvk)
	}
}

// forget drops what the watch knows of an Assignment that is gone.
func (w *driftWatch) forget(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.written, key)
	delete(w.suspects, key)
}

// take returns and clears the suspects of Assignment key, leaving out objects the
// agent itself wrote at the version seen (its write may be seen before the apply
// that made it is recorded) and those not in refs (pruned, or never applied).
func (w *driftWatch) take(key string, refs []apply.ObjectRef) map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.suspects[key]
	delete(w.suspects, key)
	if len(s) == 0 {
		return nil
	}
	written := w.written[key]
	out := map[string]bool{}
	for _, r := range refs {
		id := r.ID()
		if rv, ok := s[id]; ok && (rv == "" || written[id] != rv) {
			out[id] = true
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// watch starts the informer of a kind once.
func (w *driftWatch) watch(gvk schema.GroupVersionKind) {
	m, err := w.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		w.log.V(1).Info("not watching a kind the spoke does not map", "kind", gvk.String(), "error", err.Error())
		return
	}
	gvr := m.Resource
	w.mu.Lock()
	if w.informers[gvr] {
		w.mu.Unlock()
		return
	}
	w.informers[gvr] = true
	w.mu.Unlock()

	selector := labels.Set{apply.ManagedByLabel: apply.ManagedByValue}.String()
	inf := metadatainformer.NewFilteredMetadataInformer(w.client, gvr, metav1.NamespaceAll, 0, toolscache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = selector }).Informer()
	if err := inf.SetTransform(slim); err != nil {
		w.log.Error(err, "drift watch transform", "resource", gvr.String())
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj interface{}) {
			o, ok1 := oldObj.(*metav1.PartialObjectMetadata)
			n, ok2 := newObj.(*metav1.PartialObjectMetadata)
			if !ok1 || !ok2 || o.ResourceVersion == n.ResourceVersion ||
				(o.Annotations[fieldsAnnotation] == n.Annotations[fieldsAnnotation] && o.DeletionTimestamp.Equal(n.DeletionTimestamp)) {
				// A resync, or only the status (or nothing anyone declares) changed.
				return
			}
			w.changed(gvk, n, n.ResourceVersion)
		},
		DeleteFunc: func(obj interface{}) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if n, ok := obj.(*metav1.PartialObjectMetadata); ok {
				w.changed(gvk, n, "")
			}
		},
	})
	if err != nil {
		w.log.Error(err, "drift watch handler", "resource", gvr.String())
		return
	}
	go inf.RunWithContext(w.ctx)
	w.log.V(1).Info("watching applied objects for drift", "resource", gvr.String())
}

// changed records a suspect and wakes its Assignment, unless the change is the
// agent's own write (rv is what its apply returned).
func (w *driftWatch) changed(gvk schema.GroupVersionKind, o *metav1.PartialObjectMetadata, rv string) {
	owner := o.Annotations[apply.AssignmentAnnotation]
	ns, name, ok := strings.Cut(owner, "/")
	if !ok || ns != w.hubNamespace {
		return
	}
	id := apply.EntryID(o.Namespace, o.Name, gvk.Group, gvk.Kind)
	w.mu.Lock()
	if rv != "" && w.written[owner][id] == rv {
		w.mu.Unlock()
		return
	}
	if w.suspects[owner] == nil {
		w.suspects[owner] = map[string]string{}
	}
	w.suspects[owner][id] = rv
	w.mu.Unlock()
	a := &fleetv1.Assignment{}
	a.Namespace, a.Name = ns, name
	select {
	case w.wake <- event.GenericEvent{Object: a}:
	case <-w.ctx.Done():
	}
}

// slim keeps of an object only what the watch reads.
func slim(obj interface{}) (interface{}, error) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		if o, err := slim(d.Obj); err == nil {
			d.Obj = o
		}
		return d, nil
	}
	o, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	h := sha256.New()
	for _, f := range o.ManagedFields {
		if f.Subresource != "" {
			continue
		}
		h.Write([]byte(f.Manager + "\x00" + string(f.Operation) + "\x00"))
		if f.FieldsV1 != nil {
			h.Write(f.FieldsV1.Raw)
		}
		if f.Time != nil {
			h.Write([]byte(f.Time.UTC().String()))
		}
		h.Write([]byte{0})
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: o.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion,
			DeletionTimestamp: o.DeletionTimestamp,
			Annotations: map[string]string{
				apply.AssignmentAnnotation: o.Annotations[apply.AssignmentAnnotation],
				fieldsAnnotation:           hex.EncodeToString(h.Sum(nil)[:8]),
			},
		},
	}, nil
}

// assignmentKey is how the watch names an Assignment: its owner annotation.
func assignmentKey(a *fleetv1.Assignment) string {
	return types.NamespacedName{Namespace: a.Namespace, Name: a.Name}.String()
}
