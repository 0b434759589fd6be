package capi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/registration"
)

// Labels the fleet Cluster gets, naming the CAPI Cluster it stands for.
const (
	NamespaceLabel = "flotilla.dev/capi-namespace"
	NameLabel      = "flotilla.dev/capi-name"
)

// Finalizer on the CAPI Cluster: a cluster-scoped fleet Cluster cannot have a
// namespaced owner, so deregistration runs before the CAPI Cluster may go.
const Finalizer = "fleet.flotilla.dev/capi-registration"

// InstalledAnnotation on the fleet Cluster holds the UID of the CAPI Cluster whose
// workload cluster got the agent, so that it is installed once per CAPI Cluster.
const InstalledAnnotation = "fleet.flotilla.dev/capi-agent-installed"

// kubeconfigWait is how often a provisioned Cluster without its kubeconfig Secret is
// looked at again; Secrets are not watched, so that the hub caches none of them.
const kubeconfigWait = 10 * time.Second

// Reconciler registers CAPI Clusters as fleet Clusters.
type Reconciler struct {
	Client client.Client
	// Reader reads kubeconfig Secrets uncached.
	Reader          client.Reader
	SystemNamespace string
	// Image of the agent installed into workload clusters.
	Image string
	// TokenTTL of the bootstrap tokens; registration.DefaultTokenTTL when zero.
	TokenTTL time.Duration
	Recorder events.EventRecorder
	// WorkloadClient builds a client for a workload cluster; from its kubeconfig when nil.
	WorkloadClient func(*rest.Config) (client.Client, error)
	// LabelKeys are the CAPI Cluster label keys copied to the fleet Cluster (a key
	// ending in "*" allows every key with that prefix). Placement and Tenants select
	// on fleet labels, so whoever provisions a CAPI cluster must not choose them: none
	// is copied unless an admin allows it.
	LabelKeys []string
}

// AddToScheme adds the CAPI types the Reconciler reads.
func AddToScheme(s *runtime.Scheme) error { return clusterv1.AddToScheme(s) }

// Available reports whether the hub's API server serves CAPI v1beta2 Clusters.
func Available(mapper apimeta.RESTMapper) bool {
	_, err := mapper.RESTMapping(clusterv1.GroupVersion.WithKind("Cluster").GroupKind(), clusterv1.GroupVersion.Version)
	return err == nil
}

func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("capi-cluster").
		For(&clusterv1.Cluster{}).
		Complete(r)
}

// FleetClusterName is the fleet Cluster of CAPI Cluster namespace/name: joined with
// "-" and, when longer than a fleet Cluster name may be, cut and suffixed with a hash
// so that distinct CAPI Clusters keep distinct names.
func FleetClusterName(namespace, name string) string {
	full := strings.ReplaceAll(namespace+"-"+name, ".", "-")
	if len(full) <= registration.MaxClusterNameLength {
		return full
	}
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	suffix := hex.EncodeToString(sum[:])[:8]
	head := strings.TrimRight(full[:registration.MaxClusterNameLength-len(suffix)-1], "-")
	return head + "-" + suffix
}

func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cc clusterv1.Cluster
	if err := r.Client.Get(ctx, req.NamespacedName, &cc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	name := FleetClusterName(cc.Namespace, cc.Name)
	logger := log.FromContext(ctx).WithValues("cluster", name)
	ctx = log.IntoContext(ctx, logger)

	if !cc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.deregister(ctx, &cc, name)
	}
	if !controllerutil.ContainsFinalizer(&cc, Finalizer) {
		before := cc.DeepCopy()
		controllerutil.AddFinalizer(&cc, Finalizer)
		if err := r.Client.Patch(ctx, &cc, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, err
		}
	}
	if !provisioned(&cc) {
		return ctrl.Result{}, nil // a status change brings it back
	}

	fc := &fleetv1.Cluster{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, fc)
	switch {
	case apierrors.IsNotFound(err):
		fc = nil
	case err != nil:
		return ctrl.Result{}, err
	case fc.Labels[NamespaceLabel] != cc.Namespace || fc.Labels[NameLabel] != cc.Name:
		r.event(&cc, corev1.EventTypeWarning, "NameTaken", fmt.Sprintf("fleet Cluster %s exists and was not registered for this Cluster API Cluster", name))
		return ctrl.Result{}, nil // stalled until the user renames one of them
	}
	if fc != nil && fc.Annotations[InstalledAnnotation] == string(cc.UID) {
		return ctrl.Result{}, r.syncLabels(ctx, &cc, fc)
	}

	var secret corev1.Secret
	err = r.Reader.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: cc.Name + "-kubeconfig"}, &secret)
	if apierrors.IsNotFound(err) || (err == nil && len(secret.Data["value"]) == 0) {
		logger.V(1).Info("waiting for the kubeconfig Secret")
		return ctrl.Result{RequeueAfter: kubeconfigWait}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	workload, err := r.workloadClient(secret.Data["value"])
	if err != nil {
		r.event(&cc, corev1.EventTypeWarning, "KubeconfigInvalid", err.Error())
		return ctrl.Result{RequeueAfter: kubeconfigWait}, nil
	}

	vals, err := registration.PrepareCluster(ctx, r.Client, r.SystemNamespace, name, r.labelsFor(&cc), r.TokenTTL)
	if err != nil {
		return ctrl.Result{}, err
	}
	vals.Image = r.Image
	if err := registration.ApplyInstall(ctx, workload, vals); err != nil {
		// The workload API server may not answer yet; a new token comes with the retry.
		r.event(&cc, corev1.EventTypeWarning, "AgentInstallFailed", err.Error())
		return ctrl.Result{}, fmt.Errorf("install the agent into %s: %w", name, err)
	}
	fc = &fleetv1.Cluster{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, fc); err != nil {
		return ctrl.Result{}, err
	}
	before := fc.DeepCopy()
	if fc.Annotations == nil {
		fc.Annotations = map[string]string{}
	}
	fc.Annotations[InstalledAnnotation] = string(cc.UID)
	if err := r.Client.Patch(ctx, fc, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, err
	}
	logger.Info("registered Cluster API cluster", "capiCluster", client.ObjectKeyFromObject(&cc))
	r.event(&cc, corev1.EventTypeNormal, "Registered", "registered as fleet Cluster "+name+"; agent installed")
	return ctrl.Result{}, nil
}

// provisioned: the control plane answers, by the v1beta2 phase, initialization
// status or conditions, whichever the providers in use set.
func provisioned(cc *clusterv1.Cluster) bool {
	if cc.Status.Phase == string(clusterv1.ClusterPhaseProvisioned) {
		return true
	}
	if p := cc.Status.Initialization.ControlPlaneInitialized; p != nil && *p {
		return true
	}
	return apimeta.IsStatusConditionTrue(cc.Status.Conditions, clusterv1.ClusterControlPlaneInitializedCondition) ||
		apimeta.IsStatusConditionTrue(cc.Status.Conditions, clusterv1.ClusterAvailableCondition)
}

func (r *Reconciler) labelsFor(cc *clusterv1.Cluster) map[string]string {
	l := map[string]string{}
	for k, v := range cc.Labels {
		if AllowedLabel(r.LabelKeys, k) {
			l[k] = v
		}
	}
	l[NamespaceLabel] = cc.Namespace
	l[NameLabel] = cc.Name
	return l
}

// syncLabels copies the CAPI Cluster's labels onto the fleet Cluster, so placement
// follows relabelling in Cluster API. Labels set on the fleet Cluster only are kept.
func (r *Reconciler) syncLabels(ctx context.Context, cc *clusterv1.Cluster, fc *fleetv1.Cluster) error {
	want := r.labelsFor(cc)
	before := fc.DeepCopy()
	changed := false
	if fc.Labels == nil {
		fc.Labels = map[string]string{}
	}
	for k, v := range want {
		if fc.Labels[k] != v {
			fc.Labels[k], changed = v, true
		}
	}
	if !changed {
		return nil
	}
	return r.Client.Patch(ctx, fc, client.MergeFrom(before))
}

// deregister deletes the fleet Cluster and its credential, then lets the CAPI
// Cluster go. The workload cluster is going away, so its agent is left alone.
func (r *Reconciler) deregister(ctx context.Context, cc *clusterv1.Cluster, name string) error {
	if !controllerutil.ContainsFinalizer(cc, Finalizer) {
		return nil
	}
	fc := &fleetv1.Cluster{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, fc)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err == nil && fc.Labels[NamespaceLabel] == cc.Namespace && fc.Labels[NameLabel] == cc.Name {
		if err := r.Client.Delete(ctx, fc); client.IgnoreNotFound(err) != nil {
			return err
		}
		if err := registration.Revoke(ctx, r.Client, r.SystemNamespace, name); err != nil {
			return err
		}
		log.FromContext(ctx).Info("deregistered Cluster API cluster", "capiCluster", client.ObjectKeyFromObject(cc))
	}
	before := cc.DeepCopy()
	controllerutil.RemoveFinalizer(cc, Finalizer)
	return client.IgnoreNotFound(r.Client.Patch(ctx, cc, client.MergeFrom(before)))
}

func (r *Reconciler) workloadClient(kubeconfig []byte) (client.Client, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret: %w", err)
	}
	cfg.Timeout = 30 * time.Second
	if r.WorkloadClient != nil {
		return r.WorkloadClient(cfg)
	}
	return client.New(cfg, client.Options{})
}

func (r *Reconciler) event(obj runtime.Object, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, "Register", "%s", msg)
	}
}

// AllowedLabel reports whether key is one of allowed, or starts with the prefix of
// an allowed entry ending in "*".
func AllowedLabel(allowed []string, key string) bool {
	for _, a := range allowed {
		if p, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(key, p) || a == key {
			return true
		}
	}
	return false
}
