package tenancy

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/engine"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
	"github.com/flotilla-dev/flotilla/tenancy"
)

// Reconciler sets Tenants up on the clusters they reach.
type Reconciler struct {
	Client   client.Client
	Store    engine.Publisher
	Sign     engine.Signer
	Recorder events.EventRecorder

	engine *engine.Engine
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	kind, ok := owners.Lookup(tenancyv1.TenantKind)
	if !ok {
		return fmt.Errorf("%s is not a registered deployment kind", tenancyv1.TenantKind)
	}
	r.engine = &engine.Engine{Client: r.Client, Recorder: r.Recorder, Sign: r.Sign}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1.Tenant{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	// engine.Watch re-reconciles every object of the kind on any Tenant change, which
	// is also what re-checks namespace conflicts between Tenants.
	return engine.Watch(b, r.Client, kind).Named("tenant").Complete(r)
}

// Reconcile checks one Tenant and deploys its set-up.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var t tenancyv1.Tenant
	if err := r.Client.Get(ctx, req.NamespacedName, &t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if t.DeletionTimestamp != nil {
		// Its Assignments are released (and pruned) once it is gone (hub/fleet).
		return ctrl.Result{}, nil
	}
	status := engine.StartStatusPatch(&t)
	defer func() { status.Write(ctx, r.Client, &t, &result, &retErr) }()

	var tenants tenancyv1.TenantList
	if err := r.Client.List(ctx, &tenants); err != nil {
		return ctrl.Result{}, err
	}
	if msg := conflicts(&t, tenants.Items); msg != "" {
		// Deployments in a shared namespace are refused; the set-up itself is harmless
		// and goes on, so the tenant's own namespaces keep working.
		r.event(&t, corev1.EventTypeWarning, tenancyv1.NamespaceConflictReason, msg)
	}
	if t.Spec.ClusterSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(t.Spec.ClusterSelector); err != nil {
			msg := "clusterSelector: " + err.Error()
			conditions.MarkStalled(&t, tenancyv1.TenantInvalidReason, msg)
			r.event(&t, corev1.EventTypeWarning, tenancyv1.TenantInvalidReason, msg)
			return ctrl.Result{}, nil
		}
	}

	art, err := r.build(&t)
	if err != nil {
		conditions.MarkFailed(&t, meta.BuildFailedReason, err.Error())
		return ctrl.Result{}, err
	}
	t.Status.Artifact = art
	d := engine.Deployment{
		Owner: &t, Kind: tenancyv1.TenantKind,
		// The agent applies the set-up as itself: a tenant cannot make its own
		// namespaces or bindings. Prune takes them away from clusters the tenant no
		// longer reaches.
		Spec: fleetv1.AssignmentSpec{
			Artifact: fleetv1.SignedArtifact{URL: art.URL, Digest: art.Digest, Revision: art.Revision},
			Prune:    true,
		},
	}
	if t.Spec.ClusterSelector != nil {
		d.Placement = deliveryv1.Placement{ClusterSelector: t.Spec.ClusterSelector}
	}
	res, err := r.engine.Deploy(ctx, d)
	if err != nil {
		return ctrl.Result{}, err
	}
	t.Status.Clusters = tenancyv1.TenantClusterCounts{Total: res.Clusters.Targeted, Ready: res.Clusters.Ready}
	t.Status.Failures = res.Failures
	if conditions.IsTrue(&t, meta.ReadyCondition) {
		conditions.MarkReady(&t, tenancyv1.TenantSetUpReason, fmt.Sprintf("set up on %d of %d clusters", res.Clusters.Ready, res.Clusters.Targeted))
	}
	t.Status.ObservedGeneration = t.Generation
	return ctrl.Result{}, nil
}

// build packs and stores the tenant's set-up; the same spec gives the same digest.
func (r *Reconciler) build(t *tenancyv1.Tenant) (*meta.Artifact, error) {
	manifests, err := tenancy.SetupManifests(t)
	if err != nil {
		return nil, err
	}
	packed, err := artifact.Pack(map[string][]byte{"manifests.yaml": manifests})
	if err != nil {
		return nil, err
	}
	digest, err := r.Store.Put(packed)
	if err != nil {
		return nil, fmt.Errorf("storing the tenant set-up: %w", err)
	}
	size := int64(len(packed))
	now := metav1.Now()
	if t.Status.Artifact != nil && t.Status.Artifact.Digest == digest {
		now = t.Status.Artifact.LastUpdateTime
	}
	return &meta.Artifact{URL: r.Store.URL(digest), Revision: fmt.Sprintf("generation/%d", t.Generation),
		Digest: digest, Size: &size, LastUpdateTime: now}, nil
}

// conflicts names the namespaces t shares with other Tenants.
func conflicts(t *tenancyv1.Tenant, all []tenancyv1.Tenant) string {
	var msgs []string
	for _, ns := range t.Spec.Namespaces {
		if owners := tenancy.Owners(ns, all); len(owners) > 1 {
			var names []string
			for _, o := range owners {
				names = append(names, o.Name)
			}
			msgs = append(msgs, fmt.Sprintf("namespace %s is claimed by %s", ns, strings.Join(names, ", ")))
		}
	}
	return strings.Join(msgs, "; ")
}

func (r *Reconciler) event(t *tenancyv1.Tenant, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(t, nil, typ, reason, "Reconcile", "%s", msg)
	}
}
