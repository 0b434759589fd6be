package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/conditions"
	"github.com/flotilla-dev/flotilla/spoke/apply"
	"github.com/flotilla-dev/flotilla/spoke/fetch"
)

// stalledRetry is how soon an Assignment that cannot succeed without a change
// (an artifact that does not verify or does not parse) is looked at again, as a
// safety net; a change to the Assignment wakes the agent at once anyway.
const stalledRetry = 2 * time.Minute

// applyTimeout bounds one fetch-and-apply, so one stuck Assignment cannot hold a
// worker forever.
const applyTimeout = 5 * time.Minute

// reconciler applies one Assignment to the spoke and reports in its status.
type reconciler struct {
	hub     client.Client
	events  events.EventRecorder
	spoke   *spoke
	fetcher *fetch.Fetcher
	resync  time.Duration

	mu      sync.Mutex
	applied map[string]appliedRecord // by namespace/name
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := &fleetv1.Assignment{}
	if err := r.hub.Get(ctx, req.NamespacedName, a); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !a.DeletionTimestamp.IsZero() {
		return r.release(ctx, a)
	}
	if wait, ok := resyncWait(a, r.last(req.NamespacedName), time.Now(), r.resync); ok {
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	before := a.DeepCopy()
	res, syncErr := r.sync(ctx, a)
	if err := r.hub.Status().Patch(ctx, a, client.MergeFrom(before)); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, errors.Join(syncErr, fmt.Errorf("writing status: %w", err))
	}
	if syncErr != nil {
		return ctrl.Result{}, syncErr
	}
	return res, nil
}

// sync fetches, verifies and applies the Assignment's artifact, prunes what it
// dropped, and writes the outcome into a's status. It returns an error only for what
// is worth retrying with backoff.
func (r *reconciler) sync(ctx context.Context, a *fleetv1.Assignment) (ctrl.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	log := ctrl.LoggerFrom(ctx)
	art := a.Spec.Artifact
	rev := revisionOf(art)
	owner := a.Namespace + "/" + a.Name

	files, err := r.fetcher.Fetch(ctx, art)
	if err != nil {
		if fetch.IsVerificationError(err) {
			r.stall(a, meta.VerificationFailedReason, fmt.Sprintf("revision %s not applied: %v", rev, err))
			return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
		}
		r.fail(a, meta.ArtifactFailedReason, fmt.Sprintf("revision %s: %v", rev, err))
		return ctrl.Result{}, err
	}
	objs, err := apply.Parse(files)
	if err != nil {
		r.stall(a, meta.ApplyFailedReason, fmt.Sprintf("revision %s not applied, its manifests are invalid: %v", rev, err))
		return ctrl.Result{RequeueAfter: min(stalledRetry, r.resync)}, nil
	}

	user := serviceAccountUser(a)
	c, err := r.spoke.clientFor(user)
	if err != nil {
		r.fail(a, meta.ApplyFailedReason, fmt.Sprintf("spoke client for %s: %v", user, err))
		return ctrl.Result{}, err
	}
	engine := apply.New(c, FieldOwner)
	res, err := engine.Apply(ctx, objs, apply.Options{Owner: owner, TargetNamespace: a.Spec.TargetNamespace})
	if err != nil {
		// Objects applied before the failure are ours now; keep track of them so a
		// later prune can find them.
		a.Status.Entries = apply.Merge(a.Status.Entries, res.Entries())
		a.Status.Inventory = int32(len(a.Status.Entries))
		msg := fmt.Sprintf("applying revision %s: %v", rev, err)
		if user != "" && apply.IsForbidden(err) {
			msg = fmt.Sprintf("applying revision %s as %s, which is not allowed: %v", rev, user, err)
		}
		r.fail(a, meta.ApplyFailedReason, msg)
		return ctrl.Result{}, err
	}

	entries := res.Entries()
	pruned := 0
	if a.Spec.Prune {
		dropped := apply.Diff(a.Status.Entries, entries)
		del, err := engine.Delete(ctx, dropped, owner)
		pruned = len(del.Deleted)
		if err != nil {
			entries = apply.Merge(entries, del.Failed)
			r.setApplied(a, entries)
			r.fail(a, meta.PruneFailedReason, fmt.Sprintf("revision %s applied, but pruning failed: %v", rev, err))
			return ctrl.Result{}, err
		}
	}

	previous := a.Status.AppliedDigest
	r.setApplied(a, entries)
	msg := appliedMessage(rev, res, pruned)
	a.Status.Message = msg
	a.Status.ObservedGeneration = a.Generation
	conditions.MarkReady(a, meta.SucceededReason, msg)
	log.Info(msg, "revision", rev, "digest", art.Digest)
	if changed(previous, art.Digest, res, pruned) {
		r.event(a, corev1.EventTypeNormal, meta.SucceededReason, "Apply", msg)
	}
	r.remember(a)
	return ctrl.Result{RequeueAfter: r.resync}, nil
}

func (r *reconciler) setApplied(a *fleetv1.Assignment, entries []fleetv1.InventoryEntry) {
	a.Status.AppliedDigest = a.Spec.Artifact.Digest
	a.Status.AppliedRevision = a.Spec.Artifact.Revision
	a.Status.Entries = entries
	a.Status.Inventory = int32(len(entries))
}

// fail records a failure that may go away by itself; stall one that needs a change.
func (r *reconciler) fail(a *fleetv1.Assignment, reason, msg string) {
	a.Status.Message = msg
	conditions.MarkFailed(a, reason, msg)
	r.event(a, corev1.EventTypeWarning, reason, "Apply", msg)
}

func (r *reconciler) stall(a *fleetv1.Assignment, reason, msg string) {
	a.Status.Message = msg
	conditions.MarkStalled(a, reason, msg)
	r.event(a, corev1.EventTypeWarning, reason, "Apply", msg)
}

// release deals with a deleted Assignment's objects: prunes them when spec.prune,
// orphans them otherwise, and says so with Released=True. The hub removes the
// finalizer; the agent only writes status.
func (r *reconciler) release(ctx context.Context, a *fleetv1.Assignment) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(a, fleetv1.AssignmentFinalizer) || conditions.IsTrue(a, meta.ReleasedCondition) {
		return ctrl.Result{}, nil
	}
	before := a.DeepCopy()
	n := len(a.Status.Entries)
	del := &apply.DeleteResult{}
	var relErr error
	if a.Spec.Prune {
		c, err := r.spoke.clientFor(serviceAccountUser(a))
		if err != nil {
			return ctrl.Result{}, err
		}
		del, relErr = apply.New(c, FieldOwner).Delete(ctx, a.Status.Entries, a.Namespace+"/"+a.Name)
	}
	if relErr != nil {
		msg := fmt.Sprintf("pruning failed: %v", relErr)
		a.Status.Entries = del.Failed
		a.Status.Inventory = int32(len(del.Failed))
		a.Status.Message = msg
		conditions.Set(a, meta.ReleasedCondition, metav1.ConditionFalse, meta.PruneFailedReason, msg)
		r.event(a, corev1.EventTypeWarning, meta.PruneFailedReason, "Release", msg)
	} else {
		msg := releasedMessage(a.Spec.Prune, del, n)
		a.Status.Entries = nil
		a.Status.Inventory = 0
		a.Status.Message = msg
		conditions.Set(a, meta.ReleasedCondition, metav1.ConditionTrue, meta.SucceededReason, msg)
		r.event(a, corev1.EventTypeNormal, meta.SucceededReason, "Release", msg)
		ctrl.LoggerFrom(ctx).Info(msg)
	}
	if err := r.hub.Status().Patch(ctx, a, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, errors.Join(relErr, fmt.Errorf("writing status: %w", err))
	}
	r.forget(client.ObjectKeyFromObject(a))
	return ctrl.Result{}, relErr
}

// event records msg on the Assignment in the hub; an Event's note holds at most 1kB.
func (r *reconciler) event(a *fleetv1.Assignment, typ, reason, action, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	r.events.Eventf(a, nil, typ, reason, action, "%s", msg)
}

func (r *reconciler) last(key types.NamespacedName) appliedRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied[key.String()]
}

func (r *reconciler) remember(a *fleetv1.Assignment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied[client.ObjectKeyFromObject(a).String()] = appliedRecord{
		uid: a.UID, at: time.Now(), requestedAt: a.Annotations[meta.ReconcileRequestedAtAnnotation],
	}
}

func (r *reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.applied, key.String())
}
