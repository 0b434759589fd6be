package helmrelease

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
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/engine"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/hub/source/helm"
	"github.com/flotilla-dev/flotilla/tenancy"
	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// Reasons of a HelmRelease's Ready condition besides the shared ones (BuildFailed,
// SourceNotFound, ArtifactNotReady) and the engine's.
const (
	// ChartPullFailedReason: the chart could not be fetched from its HelmRepository.
	ChartPullFailedReason = "ChartPullFailed"
	// ValuesNotFoundReason: a valuesFrom object or key that is not optional is missing.
	ValuesNotFoundReason = "ValuesNotFound"
)

// Store is the part of the artifact store the controller uses.
type Store interface {
	Get(digest string) ([]byte, error)
	Has(digest string) bool
	engine.Publisher
}

// ChartFetcher fetches a chart version of a HelmRepository into the store
// (helm.ChartFetcher).
type ChartFetcher interface {
	FetchChart(ctx context.Context, hr *sourcev1.HelmRepository, chart, versionRange string) (*meta.Artifact, error)
}

// Reconciler reconciles HelmReleases: it admits, resolves the chart, merges and
// checks the values, packages both, then hands over to the deployment engine, which
// signs each cluster's Assignment.
type Reconciler struct {
	Client client.Client
	// Reader reads valuesFrom ConfigMaps and Secrets uncached; mgr.GetAPIReader()
	// when nil.
	Reader client.Reader
	Store  Store
	// Charts fetches charts of HelmRepositories; a helm.ChartFetcher over Store and
	// Reader when nil.
	Charts ChartFetcher
	Sign   engine.Signer
	// PlatformNamespaces may hold HelmReleases no Tenant owns.
	PlatformNamespaces []string
	// Recorder emits Events; mgr.GetEventRecorder("flotilla-delivery") when nil.
	Recorder events.EventRecorder

	engine *engine.Engine
	builds *cache[built]
	charts *cache[resolved]
}

const (
	sourceIndex = ".spec.chart.sourceRef"
	valuesIndex = ".spec.valuesFrom"
)

// SetupWithManager registers the controller and the indexes it reads through.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Reader == nil {
		r.Reader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("flotilla-delivery")
	}
	if r.Charts == nil {
		r.Charts = &helm.ChartFetcher{Reader: r.Reader, Store: r.Store}
	}
	r.defaults()
	kind, ok := owners.Lookup(deliveryv1.HelmReleaseKind)
	if !ok {
		return fmt.Errorf("%s is not a registered deployment kind", deliveryv1.HelmReleaseKind)
	}
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(context.Background(), &deliveryv1.HelmRelease{}, sourceIndex, func(o client.Object) []string {
		return []string{sourceKey(o.(*deliveryv1.HelmRelease))}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(context.Background(), &deliveryv1.HelmRelease{}, valuesIndex, func(o client.Object) []string {
		hr := o.(*deliveryv1.HelmRelease)
		keys := make([]string, 0, len(hr.Spec.ValuesFrom))
		for _, v := range hr.Spec.ValuesFrom {
			keys = append(keys, v.Kind+"/"+hr.Namespace+"/"+v.Name)
		}
		return keys
	}); err != nil {
		return err
	}
	if err := idx.IndexField(context.Background(), &deliveryv1.HelmRelease{}, dependsOnIndex, func(o client.Object) []string {
		return dependencyKeys(o.(*deliveryv1.HelmRelease))
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&deliveryv1.HelmRelease{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&sourcev1.HelmRepository{}, handler.EnqueueRequestsFromMapFunc(r.forIndex(sourceIndex, sourcev1.HelmRepositoryKind)),
			builder.WithPredicates(sourceChanged{})).
		Watches(&sourcev1.GitRepository{}, handler.EnqueueRequestsFromMapFunc(r.forIndex(sourceIndex, sourcev1.GitRepositoryKind)),
			builder.WithPredicates(sourceChanged{})).
		Watches(&sourcev1.OCIRepository{}, handler.EnqueueRequestsFromMapFunc(r.forIndex(sourceIndex, sourcev1.OCIRepositoryKind)),
			builder.WithPredicates(sourceChanged{})).
		// Metadata only: the hub learns that a ConfigMap or Secret changed (its
		// resourceVersion) without holding anyone's data in memory; the values are
		// read uncached when a HelmRelease names the object.
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.forIndex(valuesIndex, "ConfigMap")),
			builder.OnlyMetadata).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.forIndex(valuesIndex, "Secret")),
			builder.OnlyMetadata).
		// A dependency placed on more or fewer clusters changes its dependents'
		// Assignments (spec.unplacedDependencies).
		Watches(&deliveryv1.HelmRelease{}, handler.EnqueueRequestsFromMapFunc(r.forIndex(dependsOnIndex, deliveryv1.HelmReleaseKind)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	return engine.Watch(b, r.Client, kind).
		// Several workers, so that one slow chart pull or render (bounded by
		// RenderTimeout) never holds every other tenant's releases.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Named("helmrelease").
		Complete(r)
}

// defaults makes what the zero Reconciler lacks; SetupWithManager calls it.
func (r *Reconciler) defaults() {
	if r.engine == nil {
		r.engine = &engine.Engine{Client: r.Client, Recorder: r.Recorder, Sign: r.Sign, PlatformNamespaces: r.PlatformNamespaces}
	}
	if r.builds == nil {
		r.builds = newCache[built](cacheSize)
	}
	if r.charts == nil {
		r.charts = newCache[resolved](cacheSize)
	}
}

func sourceKey(hr *deliveryv1.HelmRelease) string {
	return hr.Spec.Chart.SourceRef.Kind + "/" + sourceNamespace(hr) + "/" + hr.Spec.Chart.SourceRef.Name
}

func sourceNamespace(hr *deliveryv1.HelmRelease) string {
	if ns := hr.Spec.Chart.SourceRef.Namespace; ns != "" {
		return ns
	}
	return hr.Namespace
}

// forIndex maps an object of kind to the HelmReleases whose index names it.
func (r *Reconciler) forIndex(index, kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list deliveryv1.HelmReleaseList
		key := kind + "/" + o.GetNamespace() + "/" + o.GetName()
		if err := r.Client.List(ctx, &list, client.MatchingFields{index: key}); err != nil {
			return nil
		}
		out := make([]reconcile.Request, len(list.Items))
		for i := range list.Items {
			out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
		}
		return out
	}
}

// sourceChanged passes source events whose artifact or spec changed (an oci
// HelmRepository has no artifact: its spec is what matters).
type sourceChanged struct{ predicate.Funcs }

func (sourceChanged) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
		!equality.Semantic.DeepEqual(sourcev1.ArtifactOf(e.ObjectOld), sourcev1.ArtifactOf(e.ObjectNew))
}

// Reconcile admits, resolves and packages one HelmRelease, then hands it to the
// engine.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	logger := log.FromContext(ctx)
	var hr deliveryv1.HelmRelease
	if err := r.Client.Get(ctx, req.NamespacedName, &hr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if hr.DeletionTimestamp != nil {
		// Assignments are released (uninstalled on each spoke) by the hub's
		// assignment controller once their owner is gone.
		return ctrl.Result{}, nil
	}
	if hr.Spec.Suspend {
		// The spokes hold too: each Assignment is marked suspended (and signed again).
		return ctrl.Result{}, r.engine.Suspend(ctx, deliveryv1.HelmReleaseKind, &hr)
	}
	status := engine.StartStatusPatch(&hr)
	defer func() {
		if v, ok := hr.Annotations[meta.ReconcileRequestedAtAnnotation]; ok {
			hr.Status.LastHandledReconcileAt = v
		}
		status.Write(ctx, r.Client, &hr, &result, &retErr)
	}()

	// Tenancy first: a source, dependency, namespace or identity the release may not
	// name is never read or used.
	dec, err := r.engine.Admit(ctx, &hr, admission(&hr))
	if err != nil {
		return ctrl.Result{}, err
	}
	if dec.Refused() {
		return ctrl.Result{}, nil
	}

	ch, err := r.resolveChart(ctx, &hr)
	if err != nil {
		return r.chartFailed(&hr, err)
	}
	if ch.version != "" {
		hr.Status.LastAttemptedRevision = ch.version
	}

	objects, err := readValuesObjects(ctx, r.Reader, &hr)
	if err != nil {
		return ctrl.Result{}, err
	}
	vals, err := mergeValues(hr.Spec.ValuesFrom, objects, hr.Spec.Values)
	if err != nil {
		reason := meta.BuildFailedReason
		if errors.Is(err, errValuesNotFound) {
			// The object's creation wakes us through the valuesFrom watch.
			reason = ValuesNotFoundReason
		}
		return r.buildFailed(ctx, &hr, reason, err)
	}
	valuesData, checksum, err := valuesYAML(vals)
	if err != nil {
		return r.buildFailed(ctx, &hr, meta.BuildFailedReason, err)
	}
	hr.Status.LastAttemptedValuesChecksum = checksum

	art, err := r.build(ctx, &hr, ch, vals, valuesData, checksum)
	if err != nil {
		return r.buildFailed(ctx, &hr, meta.BuildFailedReason, err)
	}
	hr.Status.LastAttemptedRevision = art.Revision
	if hr.Status.Artifact == nil || hr.Status.Artifact.Digest != art.Digest {
		r.event(&hr, corev1.EventTypeNormal, "NewArtifact", fmt.Sprintf("packaged chart %s %s with values %s as %s",
			hr.Spec.Chart.Chart, art.Revision, checksum, art.Digest))
	}
	hr.Status.Artifact = art
	hr.Status.LastAppliedRevision = art.Revision

	d := deployment(&hr, dec)
	if d.Unplaced, err = r.unplaced(ctx, &hr); err != nil {
		return ctrl.Result{}, err
	}
	res, err := r.engine.Deploy(ctx, d)
	if err != nil {
		return ctrl.Result{}, err
	}
	hr.Status.Clusters, hr.Status.Failures, hr.Status.ChartVersions = res.Clusters, res.Failures, res.Versions
	hr.Status.ObservedGeneration = hr.Generation
	logger.V(1).Info("reconciled", "revision", art.Revision, "digest", art.Digest)
	return ctrl.Result{RequeueAfter: interval(&hr)}, nil
}

// buildFailed leaves status.artifact and every Assignment as they are: the clusters
// keep running the last good chart and values.
func (r *Reconciler) buildFailed(ctx context.Context, hr *deliveryv1.HelmRelease, reason string, err error) (ctrl.Result, error) {
	msg := err.Error()
	if hr.Status.Artifact != nil {
		msg = fmt.Sprintf("%s (clusters keep chart %s, artifact %s)", msg, hr.Status.LastAppliedRevision, hr.Status.Artifact.Digest)
	}
	conditions.MarkFailed(hr, reason, msg)
	r.event(hr, corev1.EventTypeWarning, reason, msg)
	log.FromContext(ctx).Info("build failed", "revision", hr.Status.LastAttemptedRevision, "reason", reason, "error", err.Error())
	// Nothing changes until the chart, the values or the spec does, and each of
	// those wakes us; the interval is a safety net.
	return ctrl.Result{RequeueAfter: interval(hr)}, nil
}

func (r *Reconciler) event(hr *deliveryv1.HelmRelease, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(hr, nil, typ, reason, "Reconcile", "%s", msg)
	}
}

// MinInterval is the shortest interval the hub honours: a tenant asking for a
// re-resolution every second would otherwise take the workers from everyone else.
const MinInterval = 10 * time.Second

// DefaultTimeout of each Helm action on a spoke when spec.timeout is unset.
const DefaultTimeout = 5 * time.Minute

func interval(hr *deliveryv1.HelmRelease) time.Duration {
	return max(hr.Spec.Interval.Duration, MinInterval)
}

// admission is what the tenancy rules look at in a HelmRelease. valuesFrom objects
// are not references: they are always read in the HelmRelease's own namespace.
func admission(hr *deliveryv1.HelmRelease) tenancy.Deployment {
	d := tenancy.Deployment{
		Namespace: hr.Namespace, ServiceAccountName: hr.Spec.ServiceAccountName,
		TargetNamespace: hr.EffectiveTargetNamespace(), StorageNamespace: hr.EffectiveStorageNamespace(),
		References: []tenancy.Reference{{Kind: tenancy.SourceRef, Namespace: hr.Spec.Chart.SourceRef.Namespace, Name: hr.Spec.Chart.SourceRef.Name}},
	}
	for _, dep := range hr.Spec.DependsOn {
		d.References = append(d.References, tenancy.Reference{Kind: tenancy.DependencyRef, Namespace: dep.Namespace, Name: dep.Name})
	}
	return d
}

// chartRef is a resolved chart: the stored artifact holding it, the folder inside
// ("" for the one top folder of a fetched chart), and its version when known before
// loading (a Git or OCI source's chart has the version its Chart.yaml says).
type chartRef struct {
	digest  string
	dir     string
	version string
}

var errNoArtifact = errors.New("no artifact")

// resolveChart finds the chart's artifact. A HelmRepository's chart is fetched once
// per index revision and version range (an oci repository's once per interval, since
// its tags are listed live); a Git or OCI source's is its artifact.
func (r *Reconciler) resolveChart(ctx context.Context, hr *deliveryv1.HelmRelease) (chartRef, error) {
	key := types.NamespacedName{Namespace: sourceNamespace(hr), Name: hr.Spec.Chart.SourceRef.Name}
	var art *meta.Artifact
	switch hr.Spec.Chart.SourceRef.Kind {
	case sourcev1.GitRepositoryKind:
		var src sourcev1.GitRepository
		if err := r.Client.Get(ctx, key, &src); err != nil {
			return chartRef{}, err
		}
		art = src.Status.Artifact
	case sourcev1.OCIRepositoryKind:
		var src sourcev1.OCIRepository
		if err := r.Client.Get(ctx, key, &src); err != nil {
			return chartRef{}, err
		}
		art = src.Status.Artifact
	default:
		var src sourcev1.HelmRepository
		if err := r.Client.Get(ctx, key, &src); err != nil {
			return chartRef{}, err
		}
		return r.fetchChart(ctx, hr, &src)
	}
	if art == nil {
		return chartRef{}, errNoArtifact
	}
	// spec.chart.version does not apply: the folder's Chart.yaml says the version.
	return chartRef{digest: art.Digest, dir: hr.Spec.Chart.Chart}, nil
}

func (r *Reconciler) fetchChart(ctx context.Context, hr *deliveryv1.HelmRelease, src *sourcev1.HelmRepository) (chartRef, error) {
	oci := src.Spec.Type == helm.TypeOCI
	if !oci && src.Status.Artifact == nil {
		return chartRef{}, errNoArtifact
	}
	key := string(src.UID) + "\x00" + fmt.Sprint(src.Generation) + "\x00" + hr.Spec.Chart.Chart + "\x00" + hr.Spec.Chart.Version
	if oci {
		// A reconcile request re-lists the tags now.
		key += "\x00" + hr.Annotations[meta.ReconcileRequestedAtAnnotation]
	} else {
		key += "\x00" + src.Status.Artifact.Digest
	}
	c, ok := r.charts.get(key)
	if ok && r.Store.Has(c.digest) && (!oci || time.Since(c.at) < interval(hr)) {
		return chartRef{digest: c.digest, version: c.version}, nil
	}
	art, err := r.Charts.FetchChart(ctx, src, hr.Spec.Chart.Chart, hr.Spec.Chart.Version)
	if err != nil {
		return chartRef{}, &chartPullError{err}
	}
	r.charts.add(key, resolved{digest: art.Digest, version: art.Revision, at: time.Now()})
	return chartRef{digest: art.Digest, version: art.Revision}, nil
}

// chartPullError: the chart could not be fetched from its repository.
type chartPullError struct{ err error }

func (e *chartPullError) Error() string { return "fetching the chart: " + e.err.Error() }
func (e *chartPullError) Unwrap() error { return e.err }

func (r *Reconciler) chartFailed(hr *deliveryv1.HelmRelease, err error) (ctrl.Result, error) {
	var pull *chartPullError
	ref := hr.Spec.Chart.SourceRef
	name := ref.Kind + "/" + ref.Name
	switch {
	case apierrors.IsNotFound(err):
		conditions.MarkFailed(hr, meta.SourceNotFoundReason, name+" not found")
	case errors.Is(err, errNoArtifact):
		conditions.MarkReconciling(hr, meta.ArtifactNotReadyReason, name+" has no artifact yet")
	case errors.As(err, &pull):
		msg := fmt.Sprintf("chart %s %s from %s: %v", hr.Spec.Chart.Chart, hr.Spec.Chart.Version, name, pull.err)
		if errors.As(pull.err, new(*egress.Refusal)) {
			// A chart URL of the index that the tenant may not make the hub dial: said
			// as the sources say it, Stalled until the index or the allowed networks
			// change.
			conditions.MarkStalled(hr, tenancyv1.EgressNotAllowedReason, msg)
			r.event(hr, corev1.EventTypeWarning, tenancyv1.EgressNotAllowedReason, msg)
		} else {
			conditions.MarkFailed(hr, ChartPullFailedReason, msg)
			r.event(hr, corev1.EventTypeWarning, ChartPullFailedReason, msg)
		}
		// A new index or a new tag wakes us (index) or the interval finds it (oci).
		return ctrl.Result{RequeueAfter: interval(hr)}, nil
	default:
		return ctrl.Result{}, err
	}
	// The source watch wakes us when it appears; the requeue is a safety net.
	return ctrl.Result{RequeueAfter: time.Minute}, nil
}

// build returns the artifact for the chart and values, loading and rendering the
// chart only when they are new to this process.
func (r *Reconciler) build(ctx context.Context, hr *deliveryv1.HelmRelease, ch chartRef, vals map[string]any, valuesData []byte, checksum string) (*meta.Artifact, error) {
	releaseName, ns := hr.EffectiveReleaseName(), hr.EffectiveTargetNamespace()
	key := ch.digest + "\x00" + ch.dir + "\x00" + checksum + "\x00" + releaseName + "\x00" + ns
	b, ok := r.builds.get(key)
	// The store's garbage collector may have removed an old build since.
	if !ok || !r.Store.Has(b.digest) {
		data, err := r.Store.Get(ch.digest)
		if err != nil {
			return nil, fmt.Errorf("reading the chart's artifact %s: %w", ch.digest, err)
		}
		files, err := artifact.Unpack(bytes.NewReader(data), 0)
		if err != nil {
			return nil, fmt.Errorf("unpacking the chart's artifact: %w", err)
		}
		files, err = chartFiles(files, ch.dir)
		if err != nil {
			return nil, err
		}
		loaded, err := loadChart(files)
		if err != nil {
			return nil, err
		}
		version := loaded.Metadata.Version
		hr.Status.LastAttemptedRevision = version
		began := time.Now()
		err = render(loaded, vals, releaseName, ns)
		hubmetrics.ObserveBuild(deliveryv1.HelmReleaseKind, began, err)
		if err != nil {
			return nil, fmt.Errorf("chart %s %s does not render with these values: %w", loaded.Name(), version, err)
		}
		packed, err := pack(files, valuesData)
		if err != nil {
			return nil, err
		}
		d, err := r.Store.Put(packed)
		if err != nil {
			return nil, fmt.Errorf("storing artifact: %w", err)
		}
		b = built{digest: d, size: int64(len(packed)), version: version}
		r.builds.add(key, b)
		log.FromContext(ctx).V(1).Info("built", "chart", loaded.Name(), "version", version, "digest", d)
	}
	now := metav1.Now()
	if hr.Status.Artifact != nil && hr.Status.Artifact.Digest == b.digest {
		now = hr.Status.Artifact.LastUpdateTime
	}
	return &meta.Artifact{URL: r.Store.URL(b.digest), Revision: b.version, Digest: b.digest, Size: &b.size, LastUpdateTime: now}, nil
}
