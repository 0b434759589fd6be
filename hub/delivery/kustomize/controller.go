package kustomize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/placement"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollout"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollup"
)

// Store is the part of the artifact store the controller uses.
type Store interface {
	Get(digest string) ([]byte, error)
	Has(digest string) bool
	Put(data []byte) (string, error)
	URL(digest string) string
}

// Reconciler reconciles Kustomizations.
type Reconciler struct {
	Client   client.Client
	Store    Store
	Sign     func(digest string) string
	Recorder events.EventRecorder

	mu     sync.Mutex
	builds map[string]built // by source digest and path: a build is a pure function of them
}

type built struct {
	digest string
	size   int64
}

const sourceIndex = ".spec.sourceRef"

// SetupWithManager registers the controller and the indexes it reads through.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.builds = map[string]built{}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &deliveryv1.Kustomization{}, sourceIndex,
		func(o client.Object) []string {
			k := o.(*deliveryv1.Kustomization)
			return []string{sourceKey(k)}
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&deliveryv1.Kustomization{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&sourcev1.GitRepository{}, handler.EnqueueRequestsFromMapFunc(r.forSource(sourcev1.GitRepositoryKind)),
			builder.WithPredicates(artifactChanged{})).
		Watches(&sourcev1.OCIRepository{}, handler.EnqueueRequestsFromMapFunc(r.forSource(sourcev1.OCIRepositoryKind)),
			builder.WithPredicates(artifactChanged{})).
		Watches(&fleetv1.Cluster{}, handler.EnqueueRequestsFromMapFunc(r.all),
			builder.WithPredicates(predicate.Or(predicate.LabelChangedPredicate{}, predicate.GenerationChangedPredicate{}, readyChanged{}))).
		Watches(&fleetv1.ClusterGroup{}, handler.EnqueueRequestsFromMapFunc(r.all),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fleetv1.Assignment{}, handler.EnqueueRequestsFromMapFunc(forOwner)).
		Named("kustomization").
		Complete(r)
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

func (r *Reconciler) all(ctx context.Context, _ client.Object) []reconcile.Request {
	var list deliveryv1.KustomizationList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	return requests(list.Items)
}

func requests(items []deliveryv1.Kustomization) []reconcile.Request {
	out := make([]reconcile.Request, len(items))
	for i := range items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&items[i])}
	}
	return out
}

func forOwner(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	if l[fleetv1.OwnerKindLabel] != deliveryv1.KustomizationKind {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[fleetv1.OwnerNamespaceLabel], Name: l[fleetv1.OwnerNameLabel]}}}
}

// artifactChanged passes source events whose artifact changed.
type artifactChanged struct{ predicate.Funcs }

func (artifactChanged) Update(e event.UpdateEvent) bool {
	return !equality.Semantic.DeepEqual(sourceArtifact(e.ObjectOld), sourceArtifact(e.ObjectNew))
}

// readyChanged passes Cluster updates whose Ready status changed (a heartbeat went
// stale or came back), not every heartbeat.
type readyChanged struct{ predicate.Funcs }

func (readyChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*fleetv1.Cluster)
	n, ok2 := e.ObjectNew.(*fleetv1.Cluster)
	if !ok1 || !ok2 {
		return false
	}
	status := func(c *fleetv1.Cluster) metav1.ConditionStatus {
		if r := conditions.Get(c, meta.ReadyCondition); r != nil {
			return r.Status
		}
		return ""
	}
	return status(o) != status(n)
}

func sourceArtifact(o client.Object) *meta.Artifact {
	switch s := o.(type) {
	case *sourcev1.GitRepository:
		return s.Status.Artifact
	case *sourcev1.OCIRepository:
		return s.Status.Artifact
	}
	return nil
}

// Reconcile builds, places and rolls up one Kustomization.
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
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(ks.DeepCopy())
	defer func() {
		if v, ok := ks.Annotations[meta.ReconcileRequestedAtAnnotation]; ok {
			ks.Status.LastHandledReconcileAt = v
		}
		if err := r.Client.Status().Patch(ctx, &ks, patch); err != nil && !apierrors.IsNotFound(err) {
			retErr = kerrors.NewAggregate([]error{retErr, err})
			result = ctrl.Result{}
		}
	}()

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
		return ctrl.Result{RequeueAfter: ks.Spec.Interval.Duration}, nil
	}
	if ks.Status.Artifact == nil || ks.Status.Artifact.Digest != art.Digest {
		r.event(&ks, corev1.EventTypeNormal, "NewArtifact", fmt.Sprintf("built revision %s as %s", revision, art.Digest))
	}
	ks.Status.Artifact = art
	ks.Status.LastAppliedRevision = revision

	targets, groups, err := r.place(ctx, &ks)
	if err != nil {
		conditions.MarkFailed(&ks, "PlacementFailed", err.Error())
		return ctrl.Result{}, err
	}
	plan, err := r.assign(ctx, &ks, targets, groups)
	if err != nil {
		conditions.MarkFailed(&ks, "AssignmentFailed", err.Error())
		return ctrl.Result{}, err
	}
	if err := r.rollup(ctx, &ks, targets, plan); err != nil {
		return ctrl.Result{}, err
	}
	ks.Status.ObservedGeneration = ks.Generation
	return ctrl.Result{RequeueAfter: ks.Spec.Interval.Duration}, nil
}

func (r *Reconciler) event(ks *deliveryv1.Kustomization, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ks, nil, typ, reason, "Reconcile", "%s", msg)
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
	key := src.Digest + "\x00" + ks.Spec.Path
	r.mu.Lock()
	b, ok := r.builds[key]
	r.mu.Unlock()
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
		out, err := Build(files, ks.Spec.Path)
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
		r.mu.Lock()
		r.builds[key] = b
		r.mu.Unlock()
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

func (r *Reconciler) place(ctx context.Context, ks *deliveryv1.Kustomization) ([]fleetv1.Cluster, []fleetv1.ClusterGroup, error) {
	var clusters fleetv1.ClusterList
	if err := r.Client.List(ctx, &clusters); err != nil {
		return nil, nil, err
	}
	var groups fleetv1.ClusterGroupList
	if err := r.Client.List(ctx, &groups); err != nil {
		return nil, nil, err
	}
	res, err := placement.Select(ks.Spec.Placement, clusters.Items, groups.Items)
	if err != nil {
		return nil, nil, err
	}
	if len(res.MissingGroups) > 0 {
		r.event(ks, corev1.EventTypeWarning, "ClusterGroupNotFound", "cluster groups not found: "+strings.Join(res.MissingGroups, ", "))
	}
	return res.Clusters, groups.Items, nil
}

// AssignmentName is the name of a deployment's Assignment in each cluster namespace.
func AssignmentName(kind, namespace, name string) string {
	prefix := map[string]string{deliveryv1.KustomizationKind: "ks"}[kind]
	if prefix == "" {
		prefix = strings.ToLower(kind)
	}
	n := prefix + "." + namespace + "." + name
	if len(n) <= 253 {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return n[:236] + "." + hex.EncodeToString(sum[:8])
}

func ownerLabels(ks *deliveryv1.Kustomization) map[string]string {
	return map[string]string{
		fleetv1.OwnerKindLabel:      deliveryv1.KustomizationKind,
		fleetv1.OwnerNamespaceLabel: ks.Namespace,
		fleetv1.OwnerNameLabel:      ks.Name,
	}
}

// assign writes the Assignments the rollout lets through now, and deletes those of
// clusters no longer targeted. A paused cluster keeps the Assignment it has; a
// cluster the rollout has not reached keeps its previous one.
func (r *Reconciler) assign(ctx context.Context, ks *deliveryv1.Kustomization, targets []fleetv1.Cluster, groups []fleetv1.ClusterGroup) (rollout.Plan, error) {
	name := AssignmentName(deliveryv1.KustomizationKind, ks.Namespace, ks.Name)
	base := fleetv1.AssignmentSpec{
		Owner: fleetv1.DeploymentReference{
			APIVersion: deliveryv1.GroupVersion.String(), Kind: deliveryv1.KustomizationKind,
			Namespace: ks.Namespace, Name: ks.Name, UID: string(ks.UID),
		},
		Artifact: fleetv1.SignedArtifact{
			URL: ks.Status.Artifact.URL, Digest: ks.Status.Artifact.Digest,
			Signature: r.Sign(ks.Status.Artifact.Digest), Revision: ks.Status.Artifact.Revision,
		},
		ServiceAccountName: ks.Spec.ServiceAccountName,
		TargetNamespace:    ks.Spec.TargetNamespace,
		Prune:              ks.Spec.Prune,
		ApplySettings:      *ks.Spec.ApplySettings.DeepCopy(),
	}
	for _, d := range ks.Spec.DependsOn {
		ns := d.Namespace
		if ns == "" {
			ns = ks.Namespace
		}
		base.DependsOn = append(base.DependsOn, AssignmentName(deliveryv1.KustomizationKind, ns, d.Name))
	}
	var list fleetv1.AssignmentList
	if err := r.Client.List(ctx, &list, client.MatchingLabels(ownerLabels(ks))); err != nil {
		return rollout.Plan{}, err
	}
	existing := map[string]*fleetv1.Assignment{}
	for i := range list.Items {
		existing[list.Items[i].Labels[fleetv1.ClusterLabel]] = &list.Items[i]
	}
	desired := map[string]fleetv1.AssignmentSpec{}
	for i := range targets {
		desired[targets[i].Name] = AssignmentSpecFor(base, &targets[i])
	}
	plan, err := r.plan(ks, targets, groups, existing, desired)
	if err != nil {
		return rollout.Plan{}, err
	}

	var errs []error
	targeted := map[string]bool{}
	for i := range targets {
		c := &targets[i]
		targeted[c.Name] = true
		if c.Status.Namespace == "" || c.Spec.Paused || !plan.Promote[c.Name] {
			// No namespace yet (the cluster's update wakes us), paused by the user, or
			// not reached by the rollout: the cluster keeps what it has.
			continue
		}
		if ex := existing[c.Name]; ex != nil && ex.DeletionTimestamp != nil {
			continue
		}
		a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Status.Namespace}}
		spec := desired[c.Name]
		_, err := controllerutil.CreateOrPatch(ctx, r.Client, a, func() error {
			if a.Labels == nil {
				a.Labels = map[string]string{}
			}
			for k, v := range ownerLabels(ks) {
				a.Labels[k] = v
			}
			a.Labels[fleetv1.ClusterLabel] = c.Name
			controllerutil.AddFinalizer(a, fleetv1.AssignmentFinalizer)
			a.Spec = spec
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c.Name, err))
		}
	}
	for i := range list.Items {
		a := &list.Items[i]
		if targeted[a.Labels[fleetv1.ClusterLabel]] || a.DeletionTimestamp != nil {
			continue
		}
		if err := r.Client.Delete(ctx, a); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
		} else {
			r.event(ks, corev1.EventTypeNormal, "Unassigned", "cluster "+a.Labels[fleetv1.ClusterLabel]+" is no longer targeted")
		}
	}
	return plan, kerrors.NewAggregate(errs)
}

// plan runs the rollout planner over the targeted clusters, recording approvals of
// paused stages for the current revision in status.rollout.
func (r *Reconciler) plan(ks *deliveryv1.Kustomization, targets []fleetv1.Cluster, groups []fleetv1.ClusterGroup,
	existing map[string]*fleetv1.Assignment, desired map[string]fleetv1.AssignmentSpec) (rollout.Plan, error) {
	ro := ks.Spec.Rollout
	if ro == nil {
		ro = &deliveryv1.Rollout{}
	}
	rs := ks.Status.Rollout
	if rs == nil || rs.Revision != ks.Status.Artifact.Revision {
		prev := rs
		rs = &deliveryv1.RolloutStatus{Revision: ks.Status.Artifact.Revision}
		if prev != nil {
			rs.LastHandledApproval = prev.LastHandledApproval
		}
	}
	if v := ks.Annotations[deliveryv1.ApprovedStageAnnotation]; v != "" && v != rs.LastHandledApproval {
		rs.ApprovedStages = append(rs.ApprovedStages, strings.SplitN(v, "@", 2)[0])
		rs.LastHandledApproval = v
	}
	approved := map[string]bool{}
	for _, s := range rs.ApprovedStages {
		approved[s] = true
	}

	stageOf := map[string]int{}
	var stages []rollout.Stage
	for i, st := range ro.Stages {
		stages = append(stages, rollout.Stage{Name: st.Name, Pause: st.Pause})
		members, err := placement.Select(deliveryv1.Placement{ClusterSelector: st.ClusterSelector, ClusterGroups: st.ClusterGroups}, targets, groups)
		if err != nil {
			return rollout.Plan{}, fmt.Errorf("rollout stage %s: %w", st.Name, err)
		}
		for _, c := range members.Clusters {
			if _, ok := stageOf[c.Name]; !ok {
				stageOf[c.Name] = i
			}
		}
	}
	var cs []rollout.Cluster
	for i := range targets {
		c := &targets[i]
		if c.Spec.Paused {
			continue
		}
		stage, ok := stageOf[c.Name]
		if !ok {
			stage = len(stages)
		}
		rc := rollout.Cluster{Name: c.Name, Stage: stage}
		if ex := existing[c.Name]; ex != nil && ex.DeletionTimestamp == nil && equality.Semantic.DeepEqual(ex.Spec, desired[c.Name]) {
			rc.OnTarget = true
			state := rollup.AssignmentState(ex)
			rc.Ready, rc.Failed = state == rollup.Ready, state == rollup.Failed
		}
		cs = append(cs, rc)
	}
	maxU := 0
	if ro.MaxUnavailable != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(ro.MaxUnavailable, 100, false)
		if err != nil {
			return rollout.Plan{}, fmt.Errorf("rollout.maxUnavailable: %w", err)
		}
		maxU = rollout.MaxUnavailable(v, ro.MaxUnavailable.Type == intstr.String, len(cs))
	}
	plan := rollout.Compute(cs, stages, maxU, approved)
	rs.Stage, rs.Paused = plan.Stage, plan.PausedAfter != ""
	rs.Updating, rs.Waiting = int32(plan.Updating), int32(plan.Waiting)
	if ks.Spec.Rollout == nil {
		ks.Status.Rollout = nil
	} else {
		ks.Status.Rollout = rs
	}
	return plan, nil
}

// AssignmentSpecFor specialises a deployment's Assignment spec for one cluster: when
// postBuild is set, the cluster's variables (over the deployment's) and cluster_name
// join the substitution variables, so the one artifact serves every cluster.
func AssignmentSpecFor(base fleetv1.AssignmentSpec, c *fleetv1.Cluster) fleetv1.AssignmentSpec {
	spec := *base.DeepCopy()
	if spec.PostBuild == nil {
		return spec
	}
	vars := make(map[string]string, len(spec.PostBuild.Substitute)+len(c.Spec.Variables)+1)
	for k, v := range spec.PostBuild.Substitute {
		vars[k] = v
	}
	for k, v := range c.Spec.Variables {
		vars[k] = v
	}
	vars[meta.ClusterNameVariable] = c.Name
	spec.PostBuild.Substitute = vars
	return spec
}

func (r *Reconciler) rollup(ctx context.Context, ks *deliveryv1.Kustomization, targets []fleetv1.Cluster, plan rollout.Plan) error {
	var list fleetv1.AssignmentList
	if err := r.Client.List(ctx, &list, client.MatchingLabels(ownerLabels(ks))); err != nil {
		return err
	}
	names := make([]string, len(targets))
	silent := map[string]bool{}
	for i := range targets {
		names[i] = targets[i].Name
		if c := conditions.Get(&targets[i], meta.ReadyCondition); c != nil && c.Status != metav1.ConditionTrue {
			silent[targets[i].Name] = true
		}
	}
	// Only Assignments carrying the current artifact count towards this revision.
	current := list.Items[:0]
	for _, a := range list.Items {
		if a.Spec.Artifact.Digest == ks.Status.Artifact.Digest {
			current = append(current, a)
		}
	}
	counts, failures := rollup.Deployment(names, current, silent)
	ks.Status.Clusters = counts
	ks.Status.Failures = failures
	rev := ks.Status.Artifact.Revision
	switch {
	case ks.Spec.Rollout != nil && len(plan.Failed) > 0:
		msg := fmt.Sprintf("rollout of revision %s stopped: cluster %s failed: %s; %d clusters wait on their previous revision",
			rev, plan.Failed[0], failureOf(failures, plan.Failed[0]), plan.Waiting)
		conditions.MarkStalled(ks, meta.RolloutStalledReason, msg)
	case plan.PausedAfter != "":
		msg := fmt.Sprintf("rollout of revision %s paused after stage %s: %d clusters wait; approve with `flotilla rollout approve kustomization %s -n %s`",
			rev, plan.PausedAfter, plan.Waiting, ks.Name, ks.Namespace)
		conditions.MarkReconciling(ks, meta.RolloutPausedReason, msg)
	case counts.Failed > 0:
		msg := fmt.Sprintf("%d of %d clusters failed revision %s; %s: %s", counts.Failed, counts.Targeted, rev, failures[0].Cluster, failures[0].Message)
		conditions.MarkFailed(ks, meta.ClustersFailedReason, msg)
	case counts.Targeted == 0:
		conditions.MarkReady(ks, meta.SucceededReason, "built revision "+rev+"; no cluster matches the placement")
	case len(silent) > 0 && counts.Ready+int32(len(silent)) >= counts.Targeted && plan.Waiting == 0:
		msg := fmt.Sprintf("revision %s is ready on %d of %d clusters; no heartbeat from %s", rev, counts.Ready, counts.Targeted, strings.Join(sortedKeys(silent), ", "))
		conditions.MarkFailed(ks, meta.HeartbeatStaleReason, msg)
	case counts.Ready == counts.Targeted:
		conditions.MarkReady(ks, meta.SucceededReason, fmt.Sprintf("revision %s is ready on %d of %d clusters", rev, counts.Ready, counts.Targeted))
	default:
		msg := fmt.Sprintf("revision %s is ready on %d of %d clusters", rev, counts.Ready, counts.Targeted)
		if plan.Waiting > 0 {
			msg += fmt.Sprintf(" (%d updating, %d waiting)", plan.Updating, plan.Waiting)
		}
		conditions.MarkReconciling(ks, meta.RolloutInProgressReason, msg)
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func failureOf(failures []meta.ClusterFailure, cluster string) string {
	for _, f := range failures {
		if f.Cluster == cluster {
			return f.Message
		}
	}
	return "see its Assignment"
}
