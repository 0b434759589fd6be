package signing

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Controller keeps the Keyring in step with the Secret, without a restart, and
// publishes the trust bundle to the system namespace and every cluster namespace.
type Controller struct {
	Client    client.Client
	Reader    client.Reader // reads ConfigMaps and the Secret uncached
	Keyring   *Keyring
	Namespace string
	Recorder  events.EventRecorder
}

// SetupWithManager watches the signing Secret (through a cache of that one Secret,
// so the hub does not cache every Secret) and the Clusters, for their namespaces.
func (r *Controller) SetupWithManager(mgr ctrl.Manager) error {
	secrets, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(),
		Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {
			Namespaces: map[string]cache.Config{r.Namespace: {}},
			Field:      fields.OneTermEqualSelector("metadata.name", SecretName),
		}},
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(secrets); err != nil {
		return err
	}
	// The published ConfigMaps, found by their label, so that one edited or deleted
	// by anyone else is put back.
	published, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(),
		Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {
			Label: labels.SelectorFromSet(labels.Set{PublishedLabel: "true"}),
		}},
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(published); err != nil {
		return err
	}
	secretKey := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: SecretName}}
	return ctrl.NewControllerManagedBy(mgr).
		Named("signing").
		For(&fleetv1.Cluster{}, builder.WithPredicates(namespaceChanged{})).
		WatchesRawSource(source.Kind(secrets, &corev1.Secret{},
			handler.TypedEnqueueRequestsFromMapFunc(func(context.Context, *corev1.Secret) []reconcile.Request {
				return []reconcile.Request{secretKey}
			}))).
		WatchesRawSource(source.Kind(published, &corev1.ConfigMap{},
			handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, cm *corev1.ConfigMap) []reconcile.Request {
				if cm.Name != fleetv1.TrustConfigMapName {
					return nil
				}
				return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(cm)}}
			}))).
		// Several hubs may share a process in tests.
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		Complete(r)
}

// namespaceChanged passes a Cluster when it gets its hub namespace, not on every
// heartbeat.
type namespaceChanged struct{ predicate.Funcs }

func (namespaceChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*fleetv1.Cluster)
	n, ok2 := e.ObjectNew.(*fleetv1.Cluster)
	return !ok1 || !ok2 || o.Status.Namespace != n.Status.Namespace
}

// Reconcile reloads the keys for the Secret's request and publishes everywhere, or
// publishes to one Cluster's namespace for a Cluster's request.
func (r *Controller) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if req.Namespace == "" {
		var c fleetv1.Cluster
		if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if c.Status.Namespace == "" || !c.DeletionTimestamp.IsZero() {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, r.publish(ctx, c.Status.Namespace)
	}
	if req.Name == fleetv1.TrustConfigMapName {
		return ctrl.Result{}, r.publish(ctx, req.Namespace)
	}
	return ctrl.Result{}, r.reload(ctx)
}

func (r *Controller) reload(ctx context.Context) error {
	logger := log.FromContext(ctx)
	var s corev1.Secret
	if err := r.Reader.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: SecretName}, &s); err != nil {
		// A deleted Secret does not take the keys away: the hub keeps signing with
		// what it has, and makes a new Secret on its next start.
		return client.IgnoreNotFound(err)
	}
	st, err := ParseSecret(&s)
	if err != nil {
		// Keep signing with the last good keys rather than stop delivering.
		logger.Error(err, "signing keys not reloaded; keeping the previous ones")
		r.event(&s, corev1.EventTypeWarning, "InvalidSigningKeys", err.Error())
		return nil
	}
	changed, err := normalize(&s, st, metav1.Now().Time)
	if err != nil {
		return err
	}
	if changed {
		// The write brings us back here with the next sequence number.
		return client.IgnoreNotFound(r.Client.Update(ctx, &s))
	}
	prev := r.Keyring.state()
	if prev.Sequence != st.Sequence || prev.Active != st.Active {
		logger.Info("signing keys changed", "active", st.Active, "keys", st.IDs(), "sequence", st.Sequence)
		r.event(&s, corev1.EventTypeNormal, "SigningKeysChanged",
			"active key "+st.Active+", trusted keys "+joinIDs(st.IDs()))
	}
	r.Keyring.Set(st)

	errs := []error{r.publish(ctx, r.Namespace)}
	var clusters fleetv1.ClusterList
	if err := r.Client.List(ctx, &clusters); err != nil {
		return err
	}
	for _, c := range clusters.Items {
		if c.Status.Namespace != "" && c.DeletionTimestamp.IsZero() {
			errs = append(errs, r.publish(ctx, c.Status.Namespace))
		}
	}
	return kerrors.NewAggregate(errs)
}

func (r *Controller) publish(ctx context.Context, ns string) error {
	return PublishTrust(ctx, r.Reader, r.Client, ns, r.Keyring)
}

// PublishTrust writes the trust ConfigMap into ns when it differs from the keyring's.
func PublishTrust(ctx context.Context, reader client.Reader, writer client.Client, ns string, k *Keyring) error {
	data, err := k.TrustData()
	if err != nil {
		return err
	}
	var cm corev1.ConfigMap
	err = reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: fleetv1.TrustConfigMapName}, &cm)
	if apierrors.IsNotFound(err) {
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.TrustConfigMapName,
			Labels: map[string]string{PublishedLabel: "true"}}, Data: data}
		err = writer.Create(ctx, &cm)
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) && isTerminating(err) {
			return nil // the namespace is going away with its Cluster
		}
		return err
	}
	if err != nil {
		return err
	}
	if maps.Equal(cm.Data, data) && cm.Labels[PublishedLabel] == "true" {
		return nil
	}
	cm.Data = data
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[PublishedLabel] = "true"
	return client.IgnoreNotFound(writer.Update(ctx, &cm))
}

func isTerminating(err error) bool {
	return apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}

func (r *Controller) event(obj client.Object, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, "Reload", "%s", msg)
	}
}

func joinIDs(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ", "
		}
		out += id
	}
	return out
}
