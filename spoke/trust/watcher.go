package trust

import (
	"context"
	"errors"
	"strings"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/flotilla-dev/flotilla/api/artifact"
)

// Reasons of the events the watcher records on the ConfigMap.
const (
	UpdatedReason  = "TrustUpdated"
	RejectedReason = "TrustBundleRejected"
)

// Watcher takes up the trust bundle from the ConfigMap in the agent's hub namespace.
type Watcher struct {
	Client   client.Client // the agent's hub client, its cache limited to its namespace
	Set      *Set
	Recorder events.EventRecorder
	// OnChange runs after the set changed, e.g. to look again at Assignments that
	// failed verification.
	OnChange func(ctx context.Context)
}

// SetupWithManager watches the trust ConfigMap.
func (w *Watcher) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("trust").
		For(&corev1.ConfigMap{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == fleetv1.TrustConfigMapName
		}))).
		// Several agents may share one process (the dev environment, tests).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		Complete(w)
}

// Reconcile verifies the bundle against the keys trusted now and takes it up. A
// bundle that does not verify is not retried: only a new one can change the answer,
// and that comes as an update.
func (w *Watcher) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var cm corev1.ConfigMap
	if err := w.Client.Get(ctx, req.NamespacedName, &cm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := w.Set.Sequence()
	changed, err := w.Set.Accept([]byte(cm.Data[artifact.TrustBundleKey]), []byte(cm.Data[artifact.TrustSignaturesKey]))
	switch {
	case err != nil && cm.Data[artifact.TrustBundleKey] == "":
		log.Info("trust ConfigMap has no bundle yet")
		return ctrl.Result{}, nil
	case errors.Is(err, artifact.ErrSignature), errors.Is(err, ErrStale):
		log.Info("trust bundle ignored", "reason", err.Error(), "trusted", w.Set.IDs(), "sequence", before)
		w.event(&cm, corev1.EventTypeWarning, RejectedReason, "trust bundle ignored: "+err.Error())
		return ctrl.Result{}, nil
	case err != nil:
		// A malformed bundle, or the state folder could not be written: retried.
		w.event(&cm, corev1.EventTypeWarning, RejectedReason, "trust bundle not taken up: "+err.Error())
		return ctrl.Result{}, err
	case !changed:
		return ctrl.Result{}, nil
	}
	ids := w.Set.IDs()
	log.Info("trusted keys updated", "keys", ids, "sequence", w.Set.Sequence(), "previous", before)
	w.event(&cm, corev1.EventTypeNormal, UpdatedReason, "trusting keys "+strings.Join(ids, ", "))
	if w.OnChange != nil {
		w.OnChange(ctx)
	}
	return ctrl.Result{}, nil
}

func (w *Watcher) event(obj client.Object, typ, reason, msg string) {
	if w.Recorder != nil {
		w.Recorder.Eventf(obj, nil, typ, reason, "Verify", "%s", msg)
	}
}
