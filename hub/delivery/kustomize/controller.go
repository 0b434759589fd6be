package kustomize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/healthexpr"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/engine"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/tenancy"
)

// Store is the part of the artifact store the controller uses.
type Store interface {
	Get(digest string) ([]byte, error)
	Has(digest string) bool
	engine.Publisher
}

// Reconciler reconciles Kustomizations: it admits and builds, then hands over to the
// deployment engine, which signs each cluster's Assignment.
type Reconciler struct {
	Client client.Client
	Store  Store
	Sign   engine.Signer
	// PlatformNamespaces may hold Kustomizations no Tenant owns.
	PlatformNamespaces []string
	Recorder           events.EventRecorder

	engine *engine.Engine
	builds *buildCache
}

type built struct {
	digest string
	size   int64
}

const sourceIndex = ".spec.sourceRef"

// SetupWithManager registers the controller and the indexes it reads through.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.defaults()
	kind, ok := owners.Lookup(deliveryv1.KustomizationKind)
	if !ok {
		return fmt.Errorf("%s is not a registered deployment kind", deliveryv1.KustomizationKind)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &deliveryv1.Kustomization{}, sourceIndex,
		func(o client.Object) []string {
			k := o.(*deliveryv1.Kustomization)
			return []string{sourceKey(k)}
		}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &deliveryv1.Kustomization{}, dependsOnIndex,
		func(o client.Object) []string { return dependencyKeys(o.(*deliveryv1.Kustomization)) }); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&deliveryv1.Kustomization{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&sourcev1.GitRepository{}, handler.EnqueueRequestsFromMapFunc(r.forSource(sourcev1.GitRepositoryKind)),
			builder.WithPredicates(artifactChanged{})).
		Watches(&sourcev1.OCIRepository{}, handler.EnqueueRequestsFromMapFunc(r.forSource(sourcev1.OCIRepositoryKind)),
			builder.WithPredicates(artifactChanged{})).
		// A dependency placed on more or fewer clusters changes its dependents'
		// Assignments (spec.unplacedDependencies).
		Watches(&deliveryv1.Kustomization{}, handler.EnqueueRequestsFromMapFunc(r.dependents),
			builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	return engine.Watch(b, r.Client, kind).
		// Several workers, so that one slow build (bounded by BuildTimeout) never
		// holds every other tenant's deployments.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Named("kustomization").
		Complete(r)
}

// defaults makes what the zero Reconciler lacks; SetupWithManager calls it.
func (r *Reconciler) defaults() {
	if r.engine == nil {
		r.engine = &engine.Engine{Client: r.Client, Recorder: r.Recorder, Sign: r.Sign, PlatformNamespaces: r.PlatformNamespaces}
	}
	if r.builds == nil {
		r.builds = newBuildCache(buildCacheSize)
	}
}

func sourceKey(k *deliveryv1.Kustomization) string {
	ns := k.Spec.SourceRef.Namespace
	if ns == "" {
		ns = k.Namespace
	}
	return k.Spec.SourceRef.Kind + "/" + ns + "/" + k.Spec.SourceRef.Name
}

func (r *Reconciler) forSource(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list deliveryv1.KustomizationList
		key := kind + "/" + o.GetNamespace() + "/" + o.GetName()
		if err := r.Client.List(ctx, &list, client.MatchingFields{sourceIndex: key}); err != nil {
			return nil
		}
		return requests(list.Items)
	}
}

func requests(items []deliveryv1.Kustomization) []reconcile.Request {
	out := make([]reconcile.Request, len(items))
	for i := range items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&items[i])}
	}
	return out
}

// artifactChanged passes source events whose artifact changed.
type artifactChanged struct{ predicate.Funcs }

func (artifactChanged) Update(e event.UpdateEvent) bool {
	return !equality.Semantic.DeepEqual(sourcev1.ArtifactOf(e.ObjectOld), sourcev1.ArtifactOf(e.ObjectNew))
}

// Reconcile admits and builds one Kustomization, then hands it to the engine.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	logger := log.FromContext(ctx)
	var ks deliveryv1.Kustomization
	if err := r.Client.Get(ctx, req.NamespacedName, &ks); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ks.DeletionTimestamp != nil {
		// Assignments are released by the hub's assignment controller once their owner is gone.
		return ctrl.Result{}, nil
	}
	if ks.Spec.Suspend {
		// The spokes hold too: each Assignment is marked suspended (and signed again).
		return ctrl.Result{}, r.engine.Suspend(ctx, deliveryv1.KustomizationKind, &ks)
	}
	status := engine.StartStatusPatch(&ks)
	defer func() {
		if v, ok := ks.Annotations[meta.ReconcileRequestedAtAnnotation]; ok {
			ks.Status.LastHandledReconcileAt = v
		}
		status.Write(ctx, r.Client, &ks, &result, &retErr)
	}()

	// Tenancy first: a source, dependency or identity the deployment may not name is
	// never read or used.
	dec, err := r.engine.Admit(ctx, &ks, admission(&ks))
	if err != nil {
		return ctrl.Result{}, err
	}
	if dec.Refused() {
		return ctrl.Result{}, nil
	}

	// The spec's own checks: a bad expression or overlay changes nothing assigned.
	if reason, err := validate(&ks); err != nil {
		msg := err.Error()
		if ks.Status.Artifact != nil {
			msg = fmt.Sprintf("%s (clusters keep revision %s)", msg, ks.Status.LastAppliedRevision)
		}
		conditions.MarkStalled(&ks, reason, msg)
		r.event(&ks, corev1.EventTypeWarning, reason, msg)
		logger.Info("spec refused", "reason", reason, "error", err.Error())
		return ctrl.Result{}, nil
	}

	src, err := r.source(ctx, &ks)
	if err != nil {
		return r.waitForSource(&ks, err)
	}
	revision := src.Revision
	ks.Status.LastAttemptedRevision = revision

	art, err := r.build(ctx, &ks, src)
	if err != nil {
		if ks.Status.Artifact != nil {
			err = fmt.Errorf("%w (clusters keep revision %s)", err, ks.Status.LastAppliedRevision)
		}
		conditions.MarkFailed(&ks, meta.BuildFailedReason, err.Error())
		r.event(&ks, corev1.EventTypeWarning, meta.BuildFailedReason, err.Error())
		logger.Info("build failed", "revision", revision, "error", err.Error())
		// Nothing changes until the source does, and a new source revision triggers us.
		return ctrl.Result{RequeueAfter: interval(&ks)}, nil
	}
	if ks.Status.Artifact == nil || ks.Status.Artifact.Digest != art.Digest {
		r.event(&ks, corev1.EventTypeNormal, "NewArtifact", fmt.Sprintf("built revision %s as %s", revision, art.Digest))
	}
	ks.Status.Artifact = art
	ks.Status.LastAppliedRevision = revision

	d := deployment(&ks, dec)
	if d.Unplaced, err = r.unplaced(ctx, &ks); err != nil {
		return ctrl.Result{}, err
	}
	res, err := r.engine.Deploy(ctx, d)
	if err != nil {
		return ctrl.Result{}, err
	}
	ks.Status.Clusters, ks.Status.Failures = res.Clusters, res.Failures
	ks.Status.ObservedGeneration = ks.Generation
	return ctrl.Result{RequeueAfter: interval(&ks)}, nil
}

func (r *Reconciler) event(ks *deliveryv1.Kustomization, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ks, nil, typ, reason, "Reconcile", "%s", msg)
	}
}

// MinInterval is the shortest interval the hub honours: a tenant asking for a
// rebuild every second would otherwise take the build workers from everyone else.
const MinInterval = 10 * time.Second

func interval(ks *deliveryv1.Kustomization) time.Duration {
	return max(ks.Spec.Interval.Duration, MinInterval)
}

// validate checks what the API server cannot: that every health expression
// compiles, and that the overlay stays inside the source and off the agent's keys.
func validate(ks *deliveryv1.Kustomization) (reason string, err error) {
	if _, err := healthexpr.Compile(ks.Spec.HealthCheckExprs); err != nil {
		return meta.InvalidHealthCheckExprReason, err
	}
	if err := OverlayOf(&ks.Spec).Validate(ks.Spec.Path); err != nil {
		return meta.InvalidOverlayReason, err
	}
	return "", nil
}

// admission is what the tenancy rules look at in a Kustomization.
func admission(ks *deliveryv1.Kustomization) tenancy.Deployment {
	d := tenancy.Deployment{
		Namespace: ks.Namespace, ServiceAccountName: ks.Spec.ServiceAccountName, TargetNamespace: ks.Spec.TargetNamespace,
		References: []tenancy.Reference{{Kind: tenancy.SourceRef, Namespace: ks.Spec.SourceRef.Namespace, Name: ks.Spec.SourceRef.Name}},
	}
	for _, dep := range ks.Spec.DependsOn {
		d.References = append(d.References, tenancy.Reference{Kind: tenancy.DependencyRef, Namespace: dep.Namespace, Name: dep.Name})
	}
	return d
}

// deployment is what the engine needs of a built and admitted Kustomization: the
// identity comes from the tenancy decision (the tenant's, or the spec's for the
// platform), never from the spec alone.
func deployment(ks *deliveryv1.Kustomization, dec tenancy.Decision) engine.Deployment {
	spec := fleetv1.AssignmentSpec{
		Artifact: fleetv1.SignedArtifact{
			URL: ks.Status.Artifact.URL, Digest: ks.Status.Artifact.Digest,
			Revision: ks.Status.Artifact.Revision,
		},
		ServiceAccountName:      dec.ServiceAccountName,
		ServiceAccountNamespace: dec.ServiceAccountNamespace,
		TargetNamespace:         ks.Spec.TargetNamespace,
		Prune:                   ks.Spec.Prune,
		ApplySettings:           *ks.Spec.ApplySettings.DeepCopy(),
		RetryInterval:           ks.Spec.RetryInterval.DeepCopy(),
	}
	for _, c := range ks.Spec.HealthCheckExprs {
		spec.HealthCheckExprs = append(spec.HealthCheckExprs, *c.DeepCopy())
	}
	if ks.Spec.Interval.Duration > 0 {
		spec.Interval = ks.Spec.Interval.DeepCopy()
	}
	for _, d := range ks.Spec.DependsOn {
		ns := d.Namespace
		if ns == "" {
			ns = ks.Namespace
		}
		spec.DependsOn = append(spec.DependsOn, fleetv1.AssignmentName(deliveryv1.KustomizationKind, ns, d.Name))
	}
	return engine.Deployment{
		Owner: ks, Kind: deliveryv1.KustomizationKind, Spec: spec, Tenant: dec.Tenant,
		Placement: ks.Spec.Placement, Rollout: ks.Spec.Rollout, RolloutStatus: &ks.Status.Rollout,
	}
}

var errNoArtifact = errors.New("no artifact")

// source returns the artifact of the Kustomization's source, whatever its kind.
func (r *Reconciler) source(ctx context.Context, ks *deliveryv1.Kustomization) (*meta.Artifact, error) {
	ns := ks.Spec.SourceRef.Namespace
	if ns == "" {
		ns = ks.Namespace
	}
	key := types.NamespacedName{Namespace: ns, Name: ks.Spec.SourceRef.Name}
	var art *meta.Artifact
	switch ks.Spec.SourceRef.Kind {
	case sourcev1.OCIRepositoryKind:
		var src sourcev1.OCIRepository
		if err := r.Client.Get(ctx, key, &src); err != nil {
			return nil, err
		}
		art = src.Status.Artifact
	default:
		var src sourcev1.GitRepository
		if err := r.Client.Get(ctx, key, &src); err != nil {
			return nil, err
		}
		art = src.Status.Artifact
	}
	if art == nil {
		return nil, errNoArtifact
	}
	return art, nil
}

func (r *Reconciler) waitForSource(ks *deliveryv1.Kustomization, err error) (ctrl.Result, error) {
	name := ks.Spec.SourceRef.Kind + "/" + ks.Spec.SourceRef.Name
	switch {
	case apierrors.IsNotFound(err):
		conditions.MarkFailed(ks, meta.SourceNotFoundReason, name+" not found")
	case errors.Is(err, errNoArtifact):
		conditions.MarkReconciling(ks, meta.ArtifactNotReadyReason, name+" has no artifact yet")
	default:
		return ctrl.Result{}, err
	}
	// The source watch wakes us when it appears; the requeue is a safety net.
	return ctrl.Result{RequeueAfter: time.Minute}, nil
}

// build returns the signed artifact for the source's current content, building only
// when the source digest or path is new to this process.
func (r *Reconciler) build(ctx context.Context, ks *deliveryv1.Kustomization, src *meta.Artifact) (*meta.Artifact, error) {
	ov := OverlayOf(&ks.Spec)
	key := src.Digest + "\x00" + ks.Spec.Path + "\x00" + ov.Key()
	b, ok := r.builds.get(key)
	// The store's garbage collector may have removed an old build since.
	if !ok || !r.Store.Has(b.digest) {
		data, err := r.Store.Get(src.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading source artifact %s: %w", src.Digest, err)
		}
		files, err := artifact.Unpack(bytes.NewReader(data), 0)
		if err != nil {
			return nil, fmt.Errorf("unpacking source artifact: %w", err)
		}
		began := time.Now()
		out, err := Build(files, ks.Spec.Path, ov)
		hubmetrics.ObserveBuild(deliveryv1.KustomizationKind, began, err)
		if err != nil {
			return nil, fmt.Errorf("kustomize build of revision %s failed: %w", src.Revision, err)
		}
		packed, err := artifact.Pack(map[string][]byte{ManifestsFile: out})
		if err != nil {
			return nil, err
		}
		d, err := r.Store.Put(packed)
		if err != nil {
			return nil, fmt.Errorf("storing artifact: %w", err)
		}
		b = built{digest: d, size: int64(len(packed))}
		r.builds.add(key, b)
		log.FromContext(ctx).V(1).Info("built", "revision", src.Revision, "digest", d)
	}
	now := metav1.Now()
	if ks.Status.Artifact != nil && ks.Status.Artifact.Digest == b.digest {
		now = ks.Status.Artifact.LastUpdateTime
	}
	return &meta.Artifact{
		URL: r.Store.URL(b.digest), Revision: src.Revision, Digest: b.digest,
		Size: &b.size, LastUpdateTime: now,
	}, nil
}
