package agent

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
)

// heartbeat renews the agent's Lease on the hub, which is how the hub knows the
// cluster is alive and which versions it runs.
type heartbeat struct {
	writer    client.Writer
	reader    client.Reader // uncached, so the agent needs no list or watch on Leases
	namespace string
	cluster   string
	interval  time.Duration
	versions  discovery.ServerVersionInterface
	// version is the agent's own version (Options.Version).
	version func() string
	log     logr.Logger

	kubeVersion string // last known, kept when the spoke does not answer
	// last is the Lease as the hub returned it after the last renewal: the next one
	// updates it without reading it first (as the kubelet renews its node Lease), so a
	// beat is one request to the hub, not two. A conflict or a missing Lease reads again.
	last *coordinationv1.Lease
}

// Start renews the Lease now and then every interval until ctx is done. A hub that
// cannot be reached is logged and tried again; it never stops the agent.
func (h *heartbeat) Start(ctx context.Context) error {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		if err := h.beat(ctx); err != nil && ctx.Err() == nil {
			h.log.Error(err, "renewing the agent lease on the hub")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *heartbeat) beat(ctx context.Context) error {
	if v, err := h.versions.ServerVersion(); err != nil {
		h.log.Error(err, "reading the spoke's Kubernetes version")
	} else {
		h.kubeVersion = v.GitVersion
	}

	now := metav1.NewMicroTime(time.Now())
	if h.last != nil {
		lease := h.last.DeepCopy()
		h.fill(lease, now)
		err := h.writer.Update(ctx, lease)
		if err == nil {
			h.last = lease
			return nil
		}
		h.last = nil
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	lease := &coordinationv1.Lease{}
	err := h.reader.Get(ctx, types.NamespacedName{Namespace: h.namespace, Name: fleetv1.AgentLeaseName}, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: h.namespace, Name: fleetv1.AgentLeaseName}}
		lease.Spec.AcquireTime = &now
		h.fill(lease, now)
		if err := h.writer.Create(ctx, lease); err != nil {
			return err
		}
		h.last = lease
		return nil
	}
	if err != nil {
		return err
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != h.cluster {
		lease.Spec.AcquireTime = &now
	}
	h.fill(lease, now)
	if err := h.writer.Update(ctx, lease); err != nil {
		return err
	}
	h.last = lease
	return nil
}

func (h *heartbeat) fill(lease *coordinationv1.Lease, now metav1.MicroTime) {
	if lease.Labels == nil {
		lease.Labels = map[string]string{}
	}
	lease.Labels[fleetv1.ClusterLabel] = h.cluster
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[fleetv1.AgentVersionAnnotation] = h.agentVersion()
	if h.kubeVersion != "" {
		lease.Annotations[fleetv1.KubernetesVersionAnnotation] = h.kubeVersion
	}
	lease.Spec.HolderIdentity = ptr.To(h.cluster)
	// Three missed beats make the lease expire, the usual Kubernetes node margin.
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(max(1, (3*h.interval).Round(time.Second)/time.Second)))
	lease.Spec.RenewTime = &now
}

func (h *heartbeat) agentVersion() string {
	if h.version == nil {
		return version.Version
	}
	return h.version()
}
