package notification

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

// The Notifier's routing with a fake API: which events reach which Alert.
func TestNotifierEvents(t *testing.T) {
	ctx := context.Background()
	tenant := &tenancyv1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Spec: tenancyv1.TenantSpec{Namespaces: []string{"team-a"},
		ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}}
	alert := func(ns string, sources ...notificationv1.EventSource) *notificationv1.Alert {
		return &notificationv1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "all"}, Spec: notificationv1.AlertSpec{
			ProviderRef: meta.LocalObjectReference{Name: "p"}, EventSources: sources}}
	}
	clusters := notificationv1.EventSource{Kind: fleetv1.ClusterKind, Name: "*"}
	kss := notificationv1.EventSource{Kind: deliveryv1.KustomizationKind, Name: "*"}
	objs := []client.Object{
		tenant,
		alert("team-a", clusters, kss, notificationv1.EventSource{Kind: sourcev1.GitRepositoryKind, Name: "*"}),
		alert("flotilla-system", clusters, notificationv1.EventSource{Kind: deliveryv1.KustomizationKind, Name: "*", Namespace: "team-a"}),
		&fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "dev-1", Labels: map[string]string{"env": "dev"}}},
		&fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod-1", Labels: map[string]string{"env": "prod"}}},
		&deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app"}},
		&sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "repo"},
			Status: sourcev1.GitRepositoryStatus{Artifact: &meta.Artifact{Revision: "main@sha1:" + sha}}},
	}
	for _, c := range []string{"dev-1", "prod-1"} {
		objs = append(objs, &fleetv1.Assignment{
			ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(c), Name: "ks.team-a.app", Labels: map[string]string{fleetv1.ClusterLabel: c}},
			Spec: fleetv1.AssignmentSpec{Owner: fleetv1.DeploymentReference{Kind: deliveryv1.KustomizationKind, Namespace: "team-a", Name: "app"},
				Artifact: fleetv1.SignedArtifact{Revision: "main@sha1:" + sha}}})
	}
	c := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(objs...).Build()

	var mu sync.Mutex
	got := map[string][]string{}
	d := &Dispatcher{Log: logr.Discard(), Resolve: func(_ context.Context, p types.NamespacedName) (Target, *http.Client, bool, error) {
		return Target{}, nil, true, nil // suspended: nothing goes out
	}}
	n := &Notifier{Client: c, PlatformNamespaces: []string{"flotilla-system"}, Dispatcher: d, started: time.Now().Add(-time.Minute)}
	n.agg = &Aggregator{Window: 50 * time.Millisecond, Emit: func(e Event) { n.Route(ctx, e) }}
	// Route's output, read from the queues.
	collect := func() map[string][]string {
		d.mu.Lock()
		defer d.mu.Unlock()
		for key, q := range d.queues {
			q.mu.Lock()
			for _, m := range q.items {
				mu.Lock()
				got[key.Namespace] = append(got[key.Namespace], m.Reason+" "+m.Kind+"/"+m.Name+": "+m.Message)
				if m.Kind == sourcev1.GitRepositoryKind && m.Metadata[RevisionKey] != "main@sha1:"+sha {
					t.Errorf("%s of the GitRepository carries revision %q, want its artifact's", m.Reason, m.Metadata[RevisionKey])
				}
				mu.Unlock()
			}
			q.items = nil
			q.mu.Unlock()
		}
		return got
	}
	ev := func(kind, ns, name, typ, reason, note string, age time.Duration) *eventsv1.Event {
		return &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
			EventTime: metav1.NewMicroTime(time.Now().Add(-age)),
			Regarding: corev1.ObjectReference{Kind: kind, Namespace: ns, Name: name}, Type: typ, Reason: reason, Note: note}
	}
	n.event(ctx, ev(fleetv1.ClusterKind, "", "dev-1", corev1.EventTypeWarning, meta.HeartbeatStaleReason, "no heartbeat", 0))
	n.event(ctx, ev(fleetv1.ClusterKind, "", "prod-1", corev1.EventTypeWarning, meta.HeartbeatStaleReason, "no heartbeat", 0))
	n.event(ctx, ev(fleetv1.ClusterKind, "", "prod-1", corev1.EventTypeNormal, meta.HeartbeatFreshReason, "agent connected", 0))
	n.event(ctx, ev(deliveryv1.KustomizationKind, "team-a", "app", corev1.EventTypeNormal, "NewArtifact", "built", 0))
	n.event(ctx, ev(deliveryv1.KustomizationKind, "team-a", "app", corev1.EventTypeWarning, meta.BuildFailedReason, "old news", 2*time.Minute))
	n.event(ctx, ev(deliveryv1.KustomizationKind, "team-a", "app", corev1.EventTypeWarning, meta.BuildFailedReason, "bad yaml", 0))
	n.event(ctx, ev(sourcev1.GitRepositoryKind, "team-a", "repo", corev1.EventTypeWarning, meta.GitOperationFailedReason, "authentication required", 0))
	n.event(ctx, ev(sourcev1.GitRepositoryKind, "team-a", "repo", corev1.EventTypeNormal, meta.SucceededReason, "stored revision", 0))
	n.event(ctx, ev(sourcev1.GitRepositoryKind, "team-a", "repo", corev1.EventTypeNormal, "NewArtifact", "stored revision main@sha1:"+sha, 0))
	for _, cl := range []string{"dev-1", "prod-1"} {
		n.event(ctx, ev(fleetv1.AssignmentKind, fleetv1.ClusterNamespace(cl), "ks.team-a.app", corev1.EventTypeWarning, meta.DriftCorrectedReason, "ConfigMap a corrected", 0))
	}
	time.Sleep(200 * time.Millisecond)
	want := map[string][]string{
		// The tenant sees its own Kustomization and dev-1, never prod-1.
		"team-a": {
			"HeartbeatStale Cluster/dev-1: cluster dev-1 is not ready: no heartbeat",
			"BuildFailed Kustomization/app: bad yaml",
			"GitOperationFailed GitRepository/repo: authentication required",
			"NewArtifact GitRepository/repo: stored revision main@sha1:" + sha,
			"DriftCorrected Kustomization/app: 2 clusters (dev-1, prod-1); cluster dev-1: ConfigMap a corrected",
		},
		// The platform sees every cluster.
		"flotilla-system": {
			"HeartbeatStale Cluster/dev-1: cluster dev-1 is not ready: no heartbeat",
			"HeartbeatStale Cluster/prod-1: cluster prod-1 is not ready: no heartbeat",
			"HeartbeatFresh Cluster/prod-1: cluster prod-1 is back: agent connected",
			"BuildFailed Kustomization/app: bad yaml",
			"DriftCorrected Kustomization/app: 2 clusters (dev-1, prod-1); cluster dev-1: ConfigMap a corrected",
		},
	}
	g := collect()
	for ns, w := range want {
		if len(g[ns]) != len(w) {
			t.Errorf("%s got %d messages, want %d:\n%q", ns, len(g[ns]), len(w), g[ns])
			continue
		}
		for i := range w {
			if g[ns][i] != w[i] {
				t.Errorf("%s message %d:\n got %q\nwant %q", ns, i, g[ns][i], w[i])
			}
		}
	}
}
