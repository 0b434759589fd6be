package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
	"github.com/flotilla-dev/flotilla/hub/delivery/placement"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollout"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollup"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/tenancy"
)

// Reasons the engine gives when it cannot finish a deployment.
const (
	PlacementFailedReason  = "PlacementFailed"
	AssignmentFailedReason = "AssignmentFailed"
)

// Owner is a deployment object: the engine reads its identity and the approval
// annotation, and sets its kstatus conditions.
type Owner interface {
	client.Object
	conditions.Object
}

// Deployment is one built deployment, as its kind's controller hands it over.
type Deployment struct {
	// Owner is the deployment object.
	Owner Owner
	// Kind is the owner's kind; it must be registered in package owners.
	Kind string
	// Spec is the Assignment spec every targeted cluster gets before
	// AssignmentSpecFor specialises it: the signed artifact, serviceAccountName,
	// targetNamespace, prune, apply settings and dependsOn (Assignment names). The
	// engine sets spec.owner.
	Spec fleetv1.AssignmentSpec
	// Tenant owns the deployment; nil for a platform deployment. The placement is
	// intersected with the clusters the tenant reaches, and every Assignment waits
	// for the tenant's own set-up Assignment on its cluster.
	Tenant *tenancyv1.Tenant
	// Placement chooses the clusters.
	Placement deliveryv1.Placement
	// Rollout paces a new revision; nil hands it to every cluster at once.
	Rollout *deliveryv1.Rollout
	// Unplaced, when set, names the dependencies (Assignment names from Spec.DependsOn)
	// whose deployments are not placed on a cluster: the cluster's Assignment lists
	// them in spec.unplacedDependencies instead of spec.dependsOn, so its agent
	// reports DependencyNotPlaced rather than waiting for an Assignment that will
	// never exist there.
	Unplaced func(c *fleetv1.Cluster) []string
	// RolloutStatus points at the owner's status.rollout, which the engine keeps for
	// the revision being rolled out while Rollout is set, and clears otherwise.
	RolloutStatus **deliveryv1.RolloutStatus
}

// Result is a deployment's rollup over its targeted clusters.
type Result struct {
	Clusters meta.ClusterCounts
	Failures []meta.ClusterFailure
	// Versions counts the targeted clusters by the version they report running
	// (rollup.Versions), whatever artifact they were handed.
	Versions  []meta.VersionCount
	Plan      rollout.Plan
	Condition Condition
}

// Engine places, assigns and rolls up deployments of every kind.
type Engine struct {
	Client   client.Client
	Recorder events.EventRecorder
	// PlatformNamespaces may hold deployments though no Tenant owns them
	// (flotilla-hub --platform-namespaces); tenancy.AnyNamespace allows every one.
	PlatformNamespaces []string
	// Sign seals an Assignment for a cluster (Signer): the download grant into
	// spec.artifact.url, the signature of its apply statement (artifact.Statement)
	// into spec.artifact.signature.
	Sign Signer
}

// Publisher is the part of the artifact store a deployment controller writes its
// build to: the content-addressed Put and the URL agents download it from.
type Publisher interface {
	Put(data []byte) (string, error)
	URL(digest string) string
}

// Signer seals an Assignment for a cluster: it may first set the download grant of
// the cluster and digest in a.Spec.Artifact.URL (storage.GrantedURL; the hub's
// artifact server then serves the download without reading Assignments), and returns
// the signature of the apply statement as a then is, URL included. The same cluster,
// spec and keys must give the same URL and signature, so that an Assignment that is
// up to date is not written again.
type Signer func(cluster string, a *fleetv1.Assignment) (string, error)

// fleet is what one Deploy reads from the API, once: every other step shares it.
type fleet struct {
	clusters    []fleetv1.Cluster
	groups      []fleetv1.ClusterGroup
	targets     []fleetv1.Cluster
	assignments []fleetv1.Assignment
}

// Deploy places the deployment, writes the Assignments its rollout lets through
// now, deletes those of clusters no longer targeted, and rolls the clusters' reports
// up. It sets the owner's conditions (PlacementFailed or AssignmentFailed with the
// returned error; the rollup's Condition otherwise) and its rollout status; the
// caller copies the counts and failures into its own status.
func (e *Engine) Deploy(ctx context.Context, d Deployment) (Result, error) {
	kind, ok := owners.Lookup(d.Kind)
	if !ok {
		return Result{}, fmt.Errorf("deployment kind %q is not registered", d.Kind)
	}
	f, err := e.place(ctx, d)
	if err != nil {
		conditions.MarkFailed(d.Owner, PlacementFailedReason, err.Error())
		return Result{}, err
	}
	plan, err := e.assign(ctx, d, kind, f)
	if err != nil {
		conditions.MarkFailed(d.Owner, AssignmentFailedReason, err.Error())
		return Result{Plan: plan}, err
	}
	res := e.rollup(d, f, plan)
	hubmetrics.SetDeployment(d.Kind, d.Owner.GetNamespace(), d.Owner.GetName(), res.Clusters)
	res.Condition.Apply(d.Owner)
	return res, nil
}

func (e *Engine) event(o Owner, typ, reason, msg string) {
	if e.Recorder != nil {
		e.Recorder.Eventf(o, nil, typ, reason, "Reconcile", "%s", msg)
	}
}

// place lists the fleet once and selects the deployment's clusters.
func (e *Engine) place(ctx context.Context, d Deployment) (*fleet, error) {
	var clusters fleetv1.ClusterList
	if err := e.Client.List(ctx, &clusters); err != nil {
		return nil, err
	}
	var groups fleetv1.ClusterGroupList
	if err := e.Client.List(ctx, &groups); err != nil {
		return nil, err
	}
	res, err := placement.Select(d.Placement, clusters.Items, groups.Items)
	if err != nil {
		return nil, err
	}
	if len(res.MissingGroups) > 0 {
		e.event(d.Owner, corev1.EventTypeWarning, "ClusterGroupNotFound", "cluster groups not found: "+strings.Join(res.MissingGroups, ", "))
	}
	// A cluster outside the tenant's reach is never targeted, whatever the placement.
	targets, err := tenancy.Intersect(d.Tenant, res.Clusters)
	if err != nil {
		return nil, err
	}
	if n := len(res.Clusters) - len(targets); n > 0 {
		e.event(d.Owner, corev1.EventTypeWarning, "OutsideTenant",
			fmt.Sprintf("the placement matches %d cluster(s) outside Tenant %s's clusterSelector; they are not targeted", n, d.Tenant.Name))
	}
	return &fleet{clusters: clusters.Items, groups: groups.Items, targets: targets}, nil
}

// assign writes the Assignments the rollout lets through now, and deletes those of
// clusters no longer targeted. A paused cluster keeps the Assignment it has; a
// cluster the rollout has not reached keeps its previous one. f.assignments ends up
// as the API server answered the writes, for the rollup.
func (e *Engine) assign(ctx context.Context, d Deployment, kind owners.Kind, f *fleet) (rollout.Plan, error) {
	owner := d.Owner
	labels := fleetv1.OwnerLabels(kind.Kind, owner.GetNamespace(), owner.GetName())
	var list fleetv1.AssignmentList
	if err := e.Client.List(ctx, &list, client.MatchingLabels(labels)); err != nil {
		return rollout.Plan{}, err
	}
	f.assignments = list.Items
	existing := map[string]*fleetv1.Assignment{}
	for i := range f.assignments {
		existing[f.assignments[i].Labels[fleetv1.ClusterLabel]] = &f.assignments[i]
	}
	base := *d.Spec.DeepCopy()
	base.Owner = kind.Reference(owner)
	if d.Tenant != nil {
		base.Tenant = d.Tenant.Name
		base.DependsOn = append(base.DependsOn, fleetv1.AssignmentName(tenancyv1.TenantKind, "", d.Tenant.Name))
	}
	name := fleetv1.AssignmentName(kind.Kind, owner.GetNamespace(), owner.GetName())
	desired := map[string]fleetv1.AssignmentSpec{}
	for i := range f.targets {
		c := &f.targets[i]
		spec := AssignmentSpecFor(base, c)
		if d.Unplaced != nil {
			spec.DependsOn, spec.UnplacedDependencies = splitDependencies(spec.DependsOn, d.Unplaced(c))
		}
		if c.Status.Namespace != "" {
			// The signature binds the whole spec to this cluster and this Assignment.
			a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Status.Namespace}, Spec: spec}
			sig, err := e.Sign(c.Name, a)
			if err != nil {
				return rollout.Plan{}, fmt.Errorf("signing the Assignment for cluster %s: %w", c.Name, err)
			}
			// The signer may have put the cluster's download grant into the URL.
			spec = a.Spec
			spec.Artifact.Signature = sig
		}
		desired[c.Name] = spec
	}
	plan, err := e.plan(d, f, existing, desired)
	if err != nil {
		return rollout.Plan{}, err
	}

	var errs []error
	targeted := map[string]bool{}
	var writes []*assignmentWrite
	for i := range f.targets {
		c := &f.targets[i]
		targeted[c.Name] = true
		if c.Status.Namespace == "" || c.Spec.Paused || !plan.Promote[c.Name] {
			// No namespace yet (the cluster's update wakes us), paused by the user, or
			// not reached by the rollout: the cluster keeps what it has.
			continue
		}
		ex := existing[c.Name]
		if ex != nil && ex.DeletionTimestamp != nil {
			continue
		}
		spec := desired[c.Name]
		if upToDate(ex, labels, c.Name, &spec) {
			// The cache already shows it as it should be: no request at all, which is
			// what most Assignments of a reconcile during a rollout's reports are.
			continue
		}
		writes = append(writes, &assignmentWrite{cluster: c.Name, namespace: c.Status.Namespace, existing: ex, spec: spec})
	}
	// A new revision writes one Assignment per cluster: in parallel, so that a large
	// fleet waits on the client's rate limit, not on one round trip after another.
	parallel(len(writes), AssignmentWriters, func(i int) {
		w := writes[i]
		a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.namespace}}
		op, err := controllerutil.CreateOrPatch(ctx, e.Client, a, func() error {
			if a.Labels == nil {
				a.Labels = map[string]string{}
			}
			for k, v := range labels {
				a.Labels[k] = v
			}
			a.Labels[fleetv1.ClusterLabel] = w.cluster
			controllerutil.AddFinalizer(a, fleetv1.AssignmentFinalizer)
			a.Spec = w.spec
			return nil
		})
		if err != nil {
			w.err = fmt.Errorf("cluster %s: %w", w.cluster, err)
			return
		}
		if op != controllerutil.OperationResultNone {
			log.FromContext(ctx).V(1).Info("assigned", "cluster", w.cluster, "assignment", name, "operation", op)
		}
		w.written = a
	})
	// The rollup reads what the API server answered rather than a lagging cache. The
	// existing entries are updated before any is appended, as they point into the slice.
	var created []fleetv1.Assignment
	for _, w := range writes {
		switch {
		case w.err != nil:
			errs = append(errs, w.err)
		case w.existing != nil && w.existing.Namespace == w.written.Namespace && w.existing.Name == w.written.Name:
			*w.existing = *w.written
		default:
			created = append(created, *w.written)
		}
	}
	f.assignments = append(f.assignments, created...)
	for i := range f.assignments {
		a := &f.assignments[i]
		if targeted[a.Labels[fleetv1.ClusterLabel]] || a.DeletionTimestamp != nil {
			continue
		}
		if err := e.Client.Delete(ctx, a); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
		} else {
			e.event(owner, corev1.EventTypeNormal, "Unassigned", "cluster "+a.Labels[fleetv1.ClusterLabel]+" is no longer targeted")
		}
	}
	return plan, kerrors.NewAggregate(errs)
}

// AssignmentWriters is how many Assignment writes of one deployment are in flight at
// once; the hub's client rate limit bounds them all together. With the Kustomization
// controller's 4 workers that is 64 writes in flight, which keeps kube-apiserver busy:
// 32 per deployment raised its latency (208 → 583 ms at 300 clusters) and not the
// rate (make bench-fleet, docs/bench-fleet.md).
const AssignmentWriters = 16

// assignmentWrite is one Assignment the engine writes, and what came of it.
type assignmentWrite struct {
	cluster, namespace string
	existing           *fleetv1.Assignment
	spec               fleetv1.AssignmentSpec
	written            *fleetv1.Assignment
	err                error
}

// parallel runs do(0…n-1) on at most workers goroutines and returns when all are done.
func parallel(n, workers int, do func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Go(func() {
			for i := range next {
				do(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// upToDate reports whether an existing Assignment already has the labels, finalizer
// and spec the engine would write.
func upToDate(ex *fleetv1.Assignment, labels map[string]string, cluster string, spec *fleetv1.AssignmentSpec) bool {
	if ex == nil || ex.Labels[fleetv1.ClusterLabel] != cluster || !controllerutil.ContainsFinalizer(ex, fleetv1.AssignmentFinalizer) {
		return false
	}
	for k, v := range labels {
		if ex.Labels[k] != v {
			return false
		}
	}
	return equality.Semantic.DeepEqual(&ex.Spec, spec)
}

// plan runs the rollout planner over the targeted clusters, recording approvals of
// paused stages for the current revision in the owner's rollout status.
func (e *Engine) plan(d Deployment, f *fleet, existing map[string]*fleetv1.Assignment,
	desired map[string]fleetv1.AssignmentSpec) (rollout.Plan, error) {
	ro := d.Rollout
	if ro == nil {
		ro = &deliveryv1.Rollout{}
	}
	revision := d.Spec.Artifact.Revision
	var rs *deliveryv1.RolloutStatus
	if d.RolloutStatus != nil && *d.RolloutStatus != nil {
		rs = (*d.RolloutStatus).DeepCopy()
	}
	if rs == nil || rs.Revision != revision {
		prev := rs
		rs = &deliveryv1.RolloutStatus{Revision: revision}
		if prev != nil {
			rs.LastHandledApproval = prev.LastHandledApproval
		}
	}
	if v := d.Owner.GetAnnotations()[deliveryv1.ApprovedStageAnnotation]; v != "" && v != rs.LastHandledApproval {
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
		members, err := placement.Select(deliveryv1.Placement{ClusterSelector: st.ClusterSelector, ClusterGroups: st.ClusterGroups}, f.targets, f.groups)
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
	for i := range f.targets {
		c := &f.targets[i]
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
	if d.RolloutStatus != nil {
		if d.Rollout == nil {
			*d.RolloutStatus = nil
		} else {
			*d.RolloutStatus = rs
		}
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

// rollup counts the targeted clusters on the current artifact and decides the
// deployment's conditions.
func (e *Engine) rollup(d Deployment, f *fleet, plan rollout.Plan) Result {
	names := make([]string, len(f.targets))
	silent := map[string]bool{}
	for i := range f.targets {
		names[i] = f.targets[i].Name
		if c := conditions.Get(&f.targets[i], meta.ReadyCondition); c != nil && c.Status != metav1.ConditionTrue {
			silent[f.targets[i].Name] = true
		}
	}
	// Only Assignments carrying the current artifact count towards this revision.
	var current []fleetv1.Assignment
	for _, a := range f.assignments {
		if a.Spec.Artifact.Digest == d.Spec.Artifact.Digest {
			current = append(current, a)
		}
	}
	counts, failures := rollup.Deployment(names, current, silent)
	silentNames := make([]string, 0, len(silent))
	for c := range silent {
		silentNames = append(silentNames, c)
	}
	sort.Strings(silentNames)
	return Result{
		Clusters: counts, Failures: failures, Plan: plan,
		Versions: rollup.Versions(names, f.assignments),
		Condition: Decide(Rollup{
			Kind: d.Kind, Namespace: d.Owner.GetNamespace(), Name: d.Owner.GetName(),
			Revision: d.Spec.Artifact.Revision, RolloutConfigured: d.Rollout != nil,
			Clusters: counts, Failures: failures, Plan: plan, Silent: silentNames,
		}),
	}
}

// splitDependencies moves the unplaced names out of dependsOn, keeping the order.
func splitDependencies(dependsOn, unplaced []string) (placed, notPlaced []string) {
	if len(unplaced) == 0 {
		return dependsOn, nil
	}
	skip := map[string]bool{}
	for _, n := range unplaced {
		skip[n] = true
	}
	for _, n := range dependsOn {
		if skip[n] {
			notPlaced = append(notPlaced, n)
		} else {
			placed = append(placed, n)
		}
	}
	return placed, notPlaced
}
