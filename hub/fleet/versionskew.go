package fleet

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
)

// VersionSkew sets the Cluster's AgentVersionSkew condition from its agent's
// reported version and the hub's (version.Compatible: at most one minor apart), and
// says whether it newly became True. Nothing is refused: an agent out of range keeps
// working as far as it can, and the condition tells the operator to upgrade it.
func VersionSkew(c *fleetv1.Cluster, hub string) (newlyUnsupported bool) {
	agent := c.Status.AgentVersion
	if agent == "" || version.Compatible(agent, hub) {
		conditions.Remove(c, meta.AgentVersionSkewCondition)
		return false
	}
	was := conditions.IsTrue(c, meta.AgentVersionSkewCondition)
	conditions.Set(c, meta.AgentVersionSkewCondition, metav1.ConditionTrue, meta.UnsupportedVersionSkewReason,
		fmt.Sprintf("agent %s and hub %s are more than %d minor version apart; upgrade the agent", agent, hub, version.MaxMinorSkew))
	return !was
}

func (r *ClusterReconciler) checkVersionSkew(c *fleetv1.Cluster) {
	if VersionSkew(c, version.Version) {
		r.event(c, corev1.EventTypeWarning, meta.UnsupportedVersionSkewReason,
			conditions.Get(c, meta.AgentVersionSkewCondition).Message)
	}
}
