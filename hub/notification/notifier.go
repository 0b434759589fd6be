package notification

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/tenancy"
)

// Notifier turns what happens on the hub into events and hands those the Alerts
// select to the Dispatcher. It runs on the leading replica only.
type Notifier struct {
	// Client reads from the manager's cache.
	Client client.Client
	// Cache gives the informers of deployments whose changes are watched.
	Cache cache.Cache
	// Config, when set, is used for a cache of Events of the notifier's own, started
	// on the leader only and keeping of each Event only what is sent; Cache's
	// informer otherwise.
	Config *rest.Config
	// PlatformNamespaces may hold Alerts though no Tenant owns them; their Alerts see
	// every namespace and cluster.
	PlatformNamespaces []string
	Dispatcher         *Dispatcher
	// Window: DefaultWindow when zero.
	Window time.Duration

	started time.Time
	agg     *Aggregator
}

// NeedLeaderElection: one replica sends, or every message would be sent twice.
func (n *Notifier) NeedLeaderElection() bool { return true }

// Start watches deployments and Events until ctx is done.
func (n *Notifier) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("notification")
	ctx = log.IntoContext(ctx, logger)
	n.started = time.Now().Add(-time.Second)
	n.agg = &Aggregator{Window: n.Window, Emit: func(e Event) { n.Route(ctx, e) }}
	n.Dispatcher.Log = logger
	n.Dispatcher.Start(ctx)
	for _, w := range []struct {
		obj      client.Object
		progress func(client.Object) (Progress, string)
	}{
		{&deliveryv1.Kustomization{}, kustomizationProgress},
		{&deliveryv1.HelmRelease{}, helmReleaseProgress},
	} {
		inf, err := n.Cache.GetInformer(ctx, w.obj)
		if err != nil {
			return err
		}
		progress := w.progress
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				o, ok := obj.(client.Object)
				if !ok || o.GetCreationTimestamp().Time.Before(n.started) {
					return // seen at start: no step is known to have happened
				}
				cur, kind := progress(o)
				n.steps(ctx, o, kind, nil, cur)
			},
			UpdateFunc: func(oldObj, newObj any) {
				o, ok1 := oldObj.(client.Object)
				c, ok2 := newObj.(client.Object)
				if !ok1 || !ok2 {
					return
				}
				prev, _ := progress(o)
				cur, kind := progress(c)
				n.steps(ctx, c, kind, &prev, cur)
			},
		}); err != nil {
			return err
		}
	}
	events := n.Cache
	if n.Config != nil {
		c, err := cache.New(n.Config, cache.Options{ByObject: map[client.Object]cache.ByObject{&eventsv1.Event{}: {Transform: slimEvent}}})
		if err != nil {
			return err
		}
		go func() {
			if err := c.Start(ctx); err != nil {
				logger.Error(err, "the Events cache stopped")
			}
		}()
		events = c
	}
	inf, err := events.GetInformer(ctx, &eventsv1.Event{})
	if err != nil {
		return err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if ev, ok := obj.(*eventsv1.Event); ok {
			n.event(ctx, ev)
		}
	}}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (n *Notifier) steps(ctx context.Context, o client.Object, kind string, prev *Progress, cur Progress) {
	for _, e := range Steps(prev, cur) {
		e.Kind, e.Namespace, e.Name, e.Labels, e.Time = kind, o.GetNamespace(), o.GetName(), o.GetLabels(), time.Now()
		n.Route(ctx, e)
	}
}

func kustomizationProgress(o client.Object) (Progress, string) {
	ks := o.(*deliveryv1.Kustomization)
	return progressOf(ks.Status.Rollout, ks.Status.LastAppliedRevision, ks.Status.Conditions, ks.Status.Clusters, ks.Status.Failures), deliveryv1.KustomizationKind
}

func helmReleaseProgress(o client.Object) (Progress, string) {
	hr := o.(*deliveryv1.HelmRelease)
	return progressOf(hr.Status.Rollout, hr.Status.LastAppliedRevision, hr.Status.Conditions, hr.Status.Clusters, hr.Status.Failures), deliveryv1.HelmReleaseKind
}

// event maps a Kubernetes Event on the hub to a fleet event: failures of
// deployments and sources, a source's new revision, a cluster going silent and
// coming back, and drift corrected on a cluster (reported by its agent on an
// Assignment, attributed to the Assignment's deployment and gathered over clusters).
func (n *Notifier) event(ctx context.Context, ev *eventsv1.Event) {
	when := ev.EventTime.Time
	if when.IsZero() {
		when = ev.CreationTimestamp.Time
	}
	if when.Before(n.started) {
		return // already there when the hub started: sent by the previous leader, if at all
	}
	severity := SeverityInfo
	if ev.Type == corev1.EventTypeWarning {
		severity = SeverityError
	}
	r := ev.Regarding
	e := Event{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Severity: severity, Reason: ev.Reason,
		Message: ev.Note, Metadata: map[string]string{}, Time: when}
	key := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
	switch r.Kind {
	case deliveryv1.KustomizationKind, deliveryv1.HelmReleaseKind:
		// Steps are derived from status; only failures come from Events.
		if severity != SeverityError || !n.labels(ctx, r.Kind, key, &e) {
			return
		}
	case sourcev1.GitRepositoryKind, sourcev1.OCIRepositoryKind, sourcev1.HelmRepositoryKind:
		if severity != SeverityError && ev.Reason != "NewArtifact" || !n.labels(ctx, r.Kind, key, &e) {
			return
		}
	case fleetv1.ClusterKind:
		switch ev.Reason {
		case meta.HeartbeatStaleReason:
			e.Message = "cluster " + r.Name + " is not ready: " + ev.Note
		case meta.HeartbeatFreshReason:
			e.Message = "cluster " + r.Name + " is back: " + ev.Note
		default:
			if severity != SeverityError {
				return
			}
		}
		if !n.labels(ctx, r.Kind, key, &e) {
			return
		}
		e.Metadata[ClusterKey] = r.Name
	case fleetv1.AssignmentKind:
		if ev.Reason != meta.DriftCorrectedReason && ev.Reason != meta.DriftDetectedReason {
			return
		}
		var a fleetv1.Assignment
		if err := n.Client.Get(ctx, key, &a); err != nil {
			return
		}
		owner := a.Spec.Owner
		if owner.Kind != deliveryv1.KustomizationKind && owner.Kind != deliveryv1.HelmReleaseKind {
			return
		}
		e.Kind, e.Namespace, e.Name = owner.Kind, owner.Namespace, owner.Name
		if !n.labels(ctx, owner.Kind, types.NamespacedName{Namespace: owner.Namespace, Name: owner.Name}, &e) {
			return
		}
		e.Metadata[ClusterKey] = a.Labels[fleetv1.ClusterLabel]
		e.Metadata[RevisionKey] = a.Spec.Artifact.Revision
		n.agg.Add(e)
		return
	default:
		return
	}
	n.Route(ctx, e)
}

// labels fills the event's labels (and revision, where the object has one) from the
// object in the cache; false when it is gone.
func (n *Notifier) labels(ctx context.Context, kind string, key types.NamespacedName, e *Event) bool {
	var o client.Object
	switch kind {
	case deliveryv1.KustomizationKind:
		o = &deliveryv1.Kustomization{}
	case deliveryv1.HelmReleaseKind:
		o = &deliveryv1.HelmRelease{}
	case sourcev1.GitRepositoryKind:
		o = &sourcev1.GitRepository{}
	case sourcev1.OCIRepositoryKind:
		o = &sourcev1.OCIRepository{}
	case sourcev1.HelmRepositoryKind:
		o = &sourcev1.HelmRepository{}
	case fleetv1.ClusterKind:
		o = &fleetv1.Cluster{}
	default:
		return false
	}
	if err := n.Client.Get(ctx, key, o); err != nil {
		return false
	}
	e.Labels = o.GetLabels()
	if rev := revisionOf(o); rev != "" && e.Metadata[RevisionKey] == "" {
		e.Metadata[RevisionKey] = rev
	}
	return true
}

func revisionOf(o client.Object) string {
	var a *meta.Artifact
	switch o := o.(type) {
	case *deliveryv1.Kustomization:
		return o.Status.LastAttemptedRevision
	case *deliveryv1.HelmRelease:
		return o.Status.LastAttemptedRevision
	case *sourcev1.GitRepository:
		a = o.Status.Artifact
	case *sourcev1.OCIRepository:
		a = o.Status.Artifact
	case *sourcev1.HelmRepository:
		a = o.Status.Artifact
	}
	if a == nil {
		return ""
	}
	return a.Revision
}

// Route sends e to the Provider of every Alert that selects it and whose tenant may
// see its object.
func (n *Notifier) Route(ctx context.Context, e Event) {
	var alerts notificationv1.AlertList
	if err := n.Client.List(ctx, &alerts); err != nil {
		log.FromContext(ctx).Error(err, "listing Alerts")
		return
	}
	if len(alerts.Items) == 0 {
		return
	}
	var tenants tenancyv1.TenantList
	if err := n.Client.List(ctx, &tenants); err != nil {
		log.FromContext(ctx).Error(err, "listing Tenants")
		return
	}
	for i := range alerts.Items {
		a := &alerts.Items[i]
		if a.DeletionTimestamp != nil || !n.sees(ctx, a, tenants.Items, e) {
			continue
		}
		f, err := NewFilter(a)
		if err != nil || !f.Matches(e) {
			continue
		}
		n.Dispatcher.Send(types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.ProviderRef.Name}, Message{Event: e, Summary: a.Spec.Summary})
	}
}

// sees applies the tenancy rules at the moment of sending, whatever the Alert's
// status says: a tenant's Alert gets events of its own namespaces only, and of the
// clusters its Tenant reaches.
func (n *Notifier) sees(ctx context.Context, a *notificationv1.Alert, tenants []tenancyv1.Tenant, e Event) bool {
	d := tenancy.DecideAlert(a, tenants, n.PlatformNamespaces)
	if !d.Sees(e.Namespace) {
		return false
	}
	if e.Kind != fleetv1.ClusterKind || d.Tenant == nil {
		return true
	}
	var c fleetv1.Cluster
	if err := n.Client.Get(ctx, types.NamespacedName{Name: e.Name}, &c); err != nil {
		return false
	}
	ok, err := tenancy.Reaches(d.Tenant, &c)
	return err == nil && ok
}

func progressOf(rs *deliveryv1.RolloutStatus, lastApplied string, conds []metav1.Condition, counts meta.ClusterCounts, failures []meta.ClusterFailure) Progress {
	p := Progress{Revision: lastApplied, Clusters: counts, Failures: failures}
	if rs != nil {
		if rs.Revision != "" {
			p.Revision = rs.Revision
		}
		p.Stage, p.Paused, p.Waiting = rs.Stage, rs.Paused, rs.Waiting
	}
	for i := range conds {
		if conds[i].Type == meta.ReadyCondition {
			c := conds[i]
			p.Ready = &c
		}
	}
	return p
}

// slimEvent keeps of an Event what the notifier reads: a hub holds every Event of the
// last hour (agents' too), and most of an Event's bytes are its managed fields.
func slimEvent(obj any) (any, error) {
	ev, ok := obj.(*eventsv1.Event)
	if !ok {
		return obj, nil
	}
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: ev.Name, Namespace: ev.Namespace, UID: ev.UID, ResourceVersion: ev.ResourceVersion,
			CreationTimestamp: ev.CreationTimestamp},
		EventTime: ev.EventTime, Regarding: ev.Regarding, Type: ev.Type, Reason: ev.Reason, Note: ev.Note,
	}, nil
}
