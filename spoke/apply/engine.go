package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/drift"
)

// Marks the agent puts on every object it applies.
const (
	// ManagedByLabel (with ManagedByValue) says Flotilla manages the object.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "flotilla"
	// AssignmentAnnotation holds <hub-namespace>/<assignment-name> of the Assignment
	// that applied the object; prune deletes nothing without it.
	AssignmentAnnotation = "fleet.flotilla.dev/assignment"
	// PruneAnnotation set to "disabled" on a live object keeps it when it is pruned.
	PruneAnnotation = "fleet.flotilla.dev/prune"
)

// Annotations a manifest (or, for ReconcileAnnotation, the live object) may carry to
// change how the agent applies it.
const (
	// ReconcileAnnotation set to "disabled" leaves the object alone: not applied, not
	// corrected, not pruned.
	ReconcileAnnotation = "fleet.flotilla.dev/reconcile"
	// SSAAnnotation set to "IfNotPresent" creates the object when it is missing and
	// never changes it afterwards (for objects other controllers fill in, such as a
	// Secret whose data is generated on the spoke).
	SSAAnnotation = "fleet.flotilla.dev/ssa"
	// ForceAnnotation set to "enabled" deletes and re-creates the object when the
	// server refuses a change to an immutable field, as spec.force does for all.
	ForceAnnotation = "fleet.flotilla.dev/force"

	Disabled     = "disabled"
	Enabled      = "enabled"
	IfNotPresent = "IfNotPresent"
)

// DriftDeleted is the Change.Drift of an object someone deleted.
const DriftDeleted = "deleted"

// DefaultCRDTimeout is how long Apply waits for new CustomResourceDefinitions to be
// served before applying their objects.
const DefaultCRDTimeout = 30 * time.Second

// protectedNamespaces are never deleted, even when an artifact listed them.
var protectedNamespaces = map[string]bool{
	"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true,
}

// Action is what applying did to one object.
type Action string

const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	// Replaced objects were deleted and created again, their immutable fields having
	// changed and force being on.
	Replaced Action = "replaced"
	// Skipped objects carry fleet.flotilla.dev/reconcile: disabled.
	Skipped Action = "skipped"
)

// Change is the outcome for one applied object.
type Change struct {
	Ref    ObjectRef
	Action Action
	// Drift, when Options.DriftCheck, says how the live object differed from the
	// manifest: DriftDeleted, or the differing fields. Empty means no drift.
	Drift string
	// ResourceVersion is the object's resourceVersion once applied (or as found,
	// when nothing was written); empty when no request was made. A watch tells the
	// agent's own writes from others' by it.
	ResourceVersion string
}

// Result lists what Apply did, in apply order.
type Result struct {
	Changes []Change
}

// Entries is the inventory of the applied objects; skipped ones are not the
// agent's to track.
func (r *Result) Entries() []fleetv1.InventoryEntry {
	out := make([]fleetv1.InventoryEntry, 0, len(r.Changes))
	for _, c := range r.Changes {
		if c.Action != Skipped {
			out = append(out, c.Ref.Entry())
		}
	}
	return out
}

// Drifted returns the changes that found drift, in apply order.
func (r *Result) Drifted() []Change {
	var out []Change
	for _, c := range r.Changes {
		if c.Drift != "" {
			out = append(out, c)
		}
	}
	return out
}

// Refs returns the objects applied (or left as they were), not the skipped ones.
func (r *Result) Refs() []ObjectRef {
	out := make([]ObjectRef, 0, len(r.Changes))
	for _, c := range r.Changes {
		if c.Action != Skipped {
			out = append(out, c.Ref)
		}
	}
	return out
}

// Count returns how many objects had action a.
func (r *Result) Count(a Action) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Summary says it for people: "3 objects (1 created, 2 unchanged)".
func (r *Result) Summary() string {
	var parts []string
	for _, a := range []Action{Created, Configured, Replaced, Unchanged, Skipped} {
		if n := r.Count(a); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	s := plural(len(r.Changes), "object")
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

// ObjectError is the server's (or the mapper's) refusal of one object.
type ObjectError struct {
	Ref ObjectRef
	Err error
}

func (e *ObjectError) Error() string { return e.Ref.String() + ": " + e.Err.Error() }
func (e *ObjectError) Unwrap() error { return e.Err }

// Error lists the objects that failed; the first one is spelled out in full.
type Error struct {
	Failed []*ObjectError
}

func (e *Error) Error() string {
	switch len(e.Failed) {
	case 0:
		return "no object failed"
	case 1:
		return e.Failed[0].Error()
	default:
		return fmt.Sprintf("%s (and %d more failed)", e.Failed[0].Error(), len(e.Failed)-1)
	}
}

// Unwrap gives errors.Is and errors.As every object's error.
func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

// Options says whose objects these are and where namespaced ones go.
type Options struct {
	// Owner is <hub-namespace>/<assignment-name>, written to AssignmentAnnotation.
	Owner string
	// TargetNamespace, when set, is the namespace of every namespaced object.
	TargetNamespace string
	// Force deletes and re-creates objects whose immutable fields changed.
	Force bool
	// DriftCheck compares each object with its live state first (a server-side apply
	// dry run) and applies only the ones that differ or are missing.
	DriftCheck bool
	// WarnOnly, with DriftCheck, reports drift without correcting it.
	WarnOnly bool
	// Adopt lets the deployment take over objects that existed before and no
	// Assignment owns. Without it such an object is a conflict, left as it is.
	// Namespaces are shared containers and always adopted.
	Adopt bool
	// Only, when not nil, limits the pass to the objects whose inventory ID it holds
	// (a drift check of what a watch saw change); the others are reported Unchanged
	// without a request.
	Only map[string]bool
}

// ErrOwnedElsewhere is the conflict of an object another Assignment owns, or one
// that existed before and the deployment did not opt in to adopt.
var ErrOwnedElsewhere = errors.New("object is not this deployment's")

// Engine applies and deletes objects with one spoke client. The client decides the
// identity (the agent's own, or an impersonated service account).
type Engine struct {
	client     client.Client
	fieldOwner string
	// CRDTimeout bounds the wait for applied CRDs to be established.
	CRDTimeout time.Duration
}

// New returns an Engine that applies as fieldOwner through c, whose RESTMapper must
// discover kinds added later (as controller-runtime's dynamic mapper does).
func New(c client.Client, fieldOwner string) *Engine {
	return &Engine{client: c, fieldOwner: fieldOwner, CRDTimeout: DefaultCRDTimeout}
}

// Apply server-side applies objs (as Parse sorts them) in one ordered pass:
// CustomResourceDefinitions and Namespaces first, then, once the CRDs are served,
// everything else. objs are marked and namespaced in place. A failure of the first
// stage stops the pass; in the second every object is tried. The Result holds every
// object that was applied, also when the error is not nil; the error is an *Error.
// applyWorkers is how many objects the second stage applies at once.
const applyWorkers = 8

func (e *Engine) Apply(ctx context.Context, objs []*unstructured.Unstructured, opts Options) (*Result, error) {
	res := &Result{}
	var failed []*ObjectError
	var crds []ObjectRef

	rest := make([]*unstructured.Unstructured, 0, len(objs))
	for _, u := range objs {
		ref := RefOf(u)
		if rank(ref) > 1 {
			rest = append(rest, u)
			continue
		}
		u.SetNamespace("")
		mark(u, opts.Owner)
		if opts.Only != nil && !opts.Only[RefOf(u).ID()] {
			res.Changes = append(res.Changes, Change{Ref: RefOf(u), Action: Unchanged})
			continue
		}
		ch, err := e.applyOne(ctx, u, opts)
		if err != nil {
			return res, &Error{Failed: []*ObjectError{{Ref: RefOf(u), Err: err}}}
		}
		res.Changes = append(res.Changes, ch)
		if rank(ref) == 0 && ch.Action != Skipped {
			crds = append(crds, RefOf(u))
		}
	}
	if err := e.waitEstablished(ctx, crds); err != nil {
		return res, &Error{Failed: []*ObjectError{err}}
	}

	// Once CRDs and Namespaces exist, the remaining objects do not depend on one
	// another: apply them with a few workers, keeping results in manifest order.
	changes := make([]*Change, len(rest))
	errs := make([]*ObjectError, len(rest))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(applyWorkers, len(rest)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				u := rest[i]
				if err := e.setNamespace(u, opts.TargetNamespace); err != nil {
					errs[i] = &ObjectError{Ref: RefOf(u), Err: err}
					continue
				}
				mark(u, opts.Owner)
				if opts.Only != nil && !opts.Only[RefOf(u).ID()] {
					changes[i] = &Change{Ref: RefOf(u), Action: Unchanged}
					continue
				}
				ch, err := e.applyOne(ctx, u, opts)
				if err != nil {
					errs[i] = &ObjectError{Ref: RefOf(u), Err: err}
					continue
				}
				changes[i] = &ch
			}
		}()
	}
	for i := range rest {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	for i := range rest {
		switch {
		case errs[i] != nil:
			failed = append(failed, errs[i])
		case changes[i] != nil:
			res.Changes = append(res.Changes, *changes[i])
		}
	}
	if len(failed) > 0 {
		return res, &Error{Failed: failed}
	}
	return res, nil
}

func mark(u *unstructured.Unstructured, owner string) {
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedByValue
	u.SetLabels(labels)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AssignmentAnnotation] = owner
	if u.GetKind() == "Namespace" && u.GetAPIVersion() == "v1" {
		// Each deployment that declares a shared Namespace keeps a key of its own (its
		// field manager owns it), so a prune knows whether another still declares it.
		ann[declaredByKey(owner)] = owner
	}
	u.SetAnnotations(ann)
}

// declaredByPrefix starts the per-deployment annotation keys of a shared Namespace.
const declaredByPrefix = "declared-by.fleet.flotilla.dev/"

func declaredByKey(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return declaredByPrefix + hex.EncodeToString(sum[:])[:16]
}

// handOver takes owner's declaration off a shared Namespace and, when owner held it,
// gives the Namespace to another deployment that declares it.
func (e *Engine) handOver(ctx context.Context, live *unstructured.Unstructured, owner string) error {
	before := live.DeepCopy()
	ann := live.GetAnnotations()
	delete(ann, declaredByKey(owner))
	if ann[AssignmentAnnotation] == owner {
		keys := make([]string, 0, len(ann))
		for k := range ann {
			if strings.HasPrefix(k, declaredByPrefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		ann[AssignmentAnnotation] = ann[keys[0]]
	}
	live.SetAnnotations(ann)
	return client.IgnoreNotFound(e.client.Patch(ctx, live, client.MergeFrom(before)))
}

// declaredByOthers reports whether a Namespace is still declared by a deployment
// other than owner.
func declaredByOthers(ann map[string]string, owner string) bool {
	mine := declaredByKey(owner)
	for k := range ann {
		if strings.HasPrefix(k, declaredByPrefix) && k != mine {
			return true
		}
	}
	return false
}

// setNamespace gives namespaced objects the target namespace, or "default" when they
// have none (as kubectl does), and takes it away from cluster-scoped ones.
func (e *Engine) setNamespace(u *unstructured.Unstructured, target string) error {
	gvk := u.GroupVersionKind()
	m, err := e.client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("the spoke serves no kind %s in version %s", gvk.Kind, gvk.GroupVersion())
		}
		return err
	}
	u.SetNamespace(namespaceFor(m.Scope.Name() == meta.RESTScopeNameNamespace, target, u.GetNamespace()))
	return nil
}

// namespaceFor is the namespace an object that names own is applied in: none when
// its kind is cluster-scoped, else the target namespace, else its own, else "default".
func namespaceFor(namespaced bool, target, own string) string {
	switch {
	case !namespaced:
		return ""
	case target != "":
		return target
	case own == "":
		return metav1.NamespaceDefault
	}
	return own
}

// applyOne applies one object as its annotations and opts say, and tells, from its
// resourceVersion before and after, whether that created, changed or left it as it was.
func (e *Engine) applyOne(ctx context.Context, u *unstructured.Unstructured, opts Options) (Change, error) {
	ch := Change{Ref: RefOf(u)}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(u.GroupVersionKind())
	exists := true
	err := e.client.Get(ctx, types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}, live)
	switch {
	case apierrors.IsNotFound(err):
		exists = false
	case err != nil:
		return ch, err
	}
	want := u.GetAnnotations()
	if want[ReconcileAnnotation] == Disabled || (exists && live.GetAnnotations()[ReconcileAnnotation] == Disabled) {
		ch.Action = Skipped
		return ch, nil
	}
	if exists && want[SSAAnnotation] == IfNotPresent {
		ch.Action = Unchanged
		return ch, nil
	}
	if exists {
		if err := owns(live, opts); err != nil {
			return ch, err
		}
	}
	if opts.DriftCheck {
		if !exists {
			ch.Drift = DriftDeleted
		} else {
			dry := u.DeepCopy()
			if err := e.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry),
				client.FieldOwner(e.fieldOwner), client.ForceOwnership, client.DryRunAll); err != nil {
				return ch, fmt.Errorf("dry run: %w", err)
			}
			paths := drift.Diff(live, dry)
			if len(paths) == 0 {
				ch.Action, ch.ResourceVersion = Unchanged, live.GetResourceVersion()
				return ch, nil
			}
			ch.Drift = drift.Describe(paths)
		}
		if opts.WarnOnly {
			ch.Action, ch.ResourceVersion = Unchanged, live.GetResourceVersion()
			return ch, nil
		}
	}

	// Apply writes the server's answer into its argument; keep the manifest as it is.
	applied := u.DeepCopy()
	err = e.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(applied),
		client.FieldOwner(e.fieldOwner), client.ForceOwnership)
	if err != nil && exists && isImmutable(err) && (opts.Force || want[ForceAnnotation] == Enabled) {
		if err := e.recreate(ctx, live); err != nil {
			return ch, err
		}
		applied = u.DeepCopy()
		if err := e.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(applied),
			client.FieldOwner(e.fieldOwner), client.ForceOwnership); err != nil {
			return ch, err
		}
		ch.Action, ch.ResourceVersion = Replaced, applied.GetResourceVersion()
		return ch, nil
	}
	ch.ResourceVersion = applied.GetResourceVersion()
	switch {
	case err != nil:
		return ch, err
	case !exists:
		ch.Action = Created
	case applied.GetResourceVersion() != live.GetResourceVersion():
		ch.Action = Configured
	default:
		ch.Action = Unchanged
	}
	return ch, nil
}

// owns refuses to take over a live object that another Assignment applied, or one
// that was there before any Assignment and the deployment did not ask to adopt: one
// deployment never silently rewrites (and later prunes) another's objects.
func owns(live *unstructured.Unstructured, opts Options) error {
	holder := live.GetAnnotations()[AssignmentAnnotation]
	switch {
	case holder == opts.Owner, live.GetKind() == "Namespace" && live.GetAPIVersion() == "v1":
		// Namespaces are containers that several deployments commonly declare.
		return nil
	case holder != "":
		return fmt.Errorf("%w: Assignment %s applied it; it is not taken over", ErrOwnedElsewhere, holder)
	case opts.Adopt:
		return nil
	default:
		return fmt.Errorf("%w: it existed before and no Assignment owns it; set spec.adopt to take it over", ErrOwnedElsewhere)
	}
}

// isImmutable tells the server's refusals that only deleting the object can get past.
func isImmutable(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	msg := err.Error()
	for _, s := range []string{"field is immutable", "may not change once set", "cannot be changed", "field is not mutable"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// recreate deletes live (only that very object, by UID) and waits until it is gone,
// so that the apply that follows creates it anew.
func (e *Engine) recreate(ctx context.Context, live *unstructured.Unstructured) error {
	uid := live.GetUID()
	err := e.client.Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting to re-create: %w", err)
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, e.CRDTimeout, true, func(ctx context.Context) (bool, error) {
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(live.GroupVersionKind())
		err := e.client.Get(ctx, client.ObjectKeyFromObject(live), cur)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && cur.GetUID() != uid, nil
	})
}

var crdGVK = ObjectRef{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}.GroupVersionKind()

// waitEstablished waits until every CRD reports Established, so that the objects of
// its kind that follow can be mapped and applied.
func (e *Engine) waitEstablished(ctx context.Context, crds []ObjectRef) *ObjectError {
	for _, ref := range crds {
		var last error
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, e.CRDTimeout, true, func(ctx context.Context) (bool, error) {
			crd := &unstructured.Unstructured{}
			crd.SetGroupVersionKind(crdGVK)
			if last = e.client.Get(ctx, types.NamespacedName{Name: ref.Name}, crd); last != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]interface{})
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			if last != nil {
				return &ObjectError{Ref: ref, Err: fmt.Errorf("not established: %w", last)}
			}
			return &ObjectError{Ref: ref, Err: fmt.Errorf("not established after %s", e.CRDTimeout)}
		}
	}
	return nil
}

// DeleteResult tells what Delete did with each entry.
type DeleteResult struct {
	// Deleted objects were ours and are being deleted.
	Deleted []ObjectRef
	// Gone were already absent, or their kind is no longer served.
	Gone []ObjectRef
	// Kept were left alone: not carrying our mark, a protected namespace, or marked
	// with PruneAnnotation=disabled.
	Kept []ObjectRef
	// Failed entries could not be deleted and should stay in the inventory.
	Failed []fleetv1.InventoryEntry
}

// Delete deletes the objects of entries that still carry owner's AssignmentAnnotation,
// dependents first (Namespaces and CRDs last). NotFound is success. The error, an
// *Error, names the objects that could not be deleted; the others are still done.
func (e *Engine) Delete(ctx context.Context, entries []fleetv1.InventoryEntry, owner string) (*DeleteResult, error) {
	res := &DeleteResult{}
	var failed []*ObjectError
	refs := make([]ObjectRef, 0, len(entries))
	for _, en := range entries {
		ref, err := ParseEntry(en)
		if err != nil {
			// An entry we cannot read names nothing we can delete; dropping it is safe.
			continue
		}
		refs = append(refs, ref)
	}
	sortForDelete(refs)
	for _, ref := range refs {
		outcome, err := e.deleteOne(ctx, ref, owner)
		if err != nil {
			failed = append(failed, &ObjectError{Ref: ref, Err: err})
			res.Failed = append(res.Failed, ref.Entry())
			continue
		}
		switch outcome {
		case deleted:
			res.Deleted = append(res.Deleted, ref)
		case gone:
			res.Gone = append(res.Gone, ref)
		default:
			res.Kept = append(res.Kept, ref)
		}
	}
	if len(failed) > 0 {
		return res, &Error{Failed: failed}
	}
	return res, nil
}

type deleteOutcome int

const (
	deleted deleteOutcome = iota
	gone
	kept
)

func (e *Engine) deleteOne(ctx context.Context, ref ObjectRef, owner string) (deleteOutcome, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(ref.GroupVersionKind())
	err := e.client.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, live)
	switch {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		return gone, nil
	case err != nil:
		return 0, err
	}
	ann := live.GetAnnotations()
	if rank(ref) == 1 && !protectedNamespaces[ref.Name] && declaredByOthers(ann, owner) {
		// Another deployment still declares this Namespace: keep it, and leave it to
		// that one, so that the last deployment to go prunes it.
		return kept, e.handOver(ctx, live, owner)
	}
	if ann[AssignmentAnnotation] != owner || ann[PruneAnnotation] == Disabled || ann[ReconcileAnnotation] == Disabled ||
		(rank(ref) == 1 && protectedNamespaces[ref.Name]) {
		return kept, nil
	}
	if !live.GetDeletionTimestamp().IsZero() {
		return deleted, nil
	}
	// The UID precondition keeps us from deleting an object someone re-created since.
	uid := live.GetUID()
	err = e.client.Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &uid})
	switch {
	case err == nil:
		return deleted, nil
	case apierrors.IsNotFound(err):
		return gone, nil
	case apierrors.IsConflict(err):
		return kept, nil
	default:
		return 0, err
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// IsForbidden reports whether any object failed because the identity may not write it.
func IsForbidden(err error) bool {
	var oe *ObjectError
	if errors.As(err, &oe) && apierrors.IsForbidden(oe.Err) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		for _, f := range e.Failed {
			if apierrors.IsForbidden(f.Err) {
				return true
			}
		}
	}
	return false
}
