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
//
// The hub sets how often: it announces an interval on the Lease
// (fleetv1.HeartbeatIntervalAnnotation) and the agent renews at that interval from
// the renewal that first sees it, writing leaseDurationSeconds = 3 × interval. The
// hub's patch of the annotation makes the agent's next Update conflict once; the Get
// after it carries the announcement. A missing, unreadable or out-of-bounds
// announcement leaves the agent at its own interval.
type heartbeat struct {
	writer    client.Writer
	reader    client.Reader // uncached, so the agent needs no list or watch on Leases
	namespace string
	cluster   string
	// interval is the agent's own (Options.HeartbeatInterval).
	interval time.Duration
	// minAnnounced is the shortest announced interval adopted;
	// fleetv1.MinHeartbeatInterval when zero.
	minAnnounced time.Duration
	versions     discovery.ServerVersionInterface
	// version is the agent's own version (Options.Version).
	version func() string
	log     logr.Logger

	kubeVersion string // last known, kept when the spoke does not answer
	// last is the Lease as the hub returned it after the last renewal: the next one
	// updates it without reading it first (as the kubelet renews its node Lease), so a
	// beat is one request to the hub, not two. A conflict or a missing Lease reads again.
	last *coordinationv1.Lease
	// current is the interval renewals run at: the hub's announced one when adopted,
	// else interval (when zero).
	current time.Duration
	// refused is the last announcement not adopted, so that it is logged once.
	refused string
}

// Start renews the Lease now and then every interval until ctx is done. A hub that
// cannot be reached is logged and tried again; it never stops the agent.
func (h *heartbeat) Start(ctx context.Context) error {
	every := h.every()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := h.beat(ctx); err != nil && ctx.Err() == nil {
			h.log.Error(err, "renewing the agent lease on the hub")
		}
		if d := h.every(); d != every {
			every = d
			t.Reset(every)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// every is the interval the agent renews at now.
func (h *heartbeat) every() time.Duration {
	if h.current > 0 {
		return h.current
	}
	return h.interval
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
			h.renewed(lease)
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
		h.adopt(lease)
		h.fill(lease, now)
		if err := h.writer.Create(ctx, lease); err != nil {
			return err
		}
		h.renewed(lease)
		return nil
	}
	if err != nil {
		return err
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != h.cluster {
		lease.Spec.AcquireTime = &now
	}
	// The Lease as read carries what the hub announced since the last renewal: this
	// renewal already promises the new interval (leaseDurationSeconds).
	h.adopt(lease)
	h.fill(lease, now)
	if err := h.writer.Update(ctx, lease); err != nil {
		return err
	}
	h.renewed(lease)
	return nil
}

// renewed keeps the Lease the hub answered a renewal with, and the interval it says.
func (h *heartbeat) renewed(lease *coordinationv1.Lease) {
	h.last = lease
	h.adopt(lease)
}

// adopt sets the renewal interval from the hub's announcement on the Lease: adopted
// when it parses and lies within the bounds, the agent's own interval otherwise.
func (h *heartbeat) adopt(lease *coordinationv1.Lease) {
	want := h.interval
	if v, ok := lease.Annotations[fleetv1.HeartbeatIntervalAnnotation]; ok {
		lowest := h.minAnnounced
		if lowest <= 0 {
			lowest = fleetv1.MinHeartbeatInterval
		}
		d, err := time.ParseDuration(v)
		if err == nil && d >= lowest && d <= fleetv1.MaxHeartbeatInterval {
			want = d
			h.refused = ""
		} else if v != h.refused {
			h.refused = v
			h.log.Info("ignoring the heartbeat interval the hub announced: not a duration within bounds; keeping the agent's own",
				"announced", v, "min", lowest, "max", fleetv1.MaxHeartbeatInterval, "interval", h.interval)
		}
	}
	if want != h.every() {
		h.log.Info("heartbeat interval changed", "from", h.every(), "to", want, "announced", lease.Annotations[fleetv1.HeartbeatIntervalAnnotation])
		h.current = want
	}
}

func (h *heartbeat) fill(lease *coordinationv1.Lease, now metav1.MicroTime) {
	if lease.Labels == nil {
		lease.Labels = map[string]string{}
	}
	lease.Labels[fleetv1.ClusterLabel] = h.cluster
	// Merged into what the Lease has, so the hub's announcement stays.
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[fleetv1.AgentVersionAnnotation] = h.agentVersion()
	if h.kubeVersion != "" {
		lease.Annotations[fleetv1.KubernetesVersionAnnotation] = h.kubeVersion
	}
	lease.Spec.HolderIdentity = ptr.To(h.cluster)
	// Three missed beats make the lease expire, the usual Kubernetes node margin; the
	// hub reads the interval back from it (leaseDurationSeconds / 3) to judge staleness.
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(max(1, (3*h.every()).Round(time.Second)/time.Second)))
	lease.Spec.RenewTime = &now
}

func (h *heartbeat) agentVersion() string {
	if h.version == nil {
		return version.Version
	}
	return h.version()
}
