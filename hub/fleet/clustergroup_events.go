package fleet

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// MembersChangedReason is the Event a ClusterGroup gets when its number of member
// clusters changes.
const MembersChangedReason = "MembersChanged"

// GroupEvent is one Event a group's reconcile records.
type GroupEvent struct {
	Type, Reason, Message string
}

// GroupEvents are the Events a group's status change deserves: its membership (the
// member count) and its health (the Ready condition's status). A first reconcile
// records its membership only when the group has members.
func GroupEvents(before, after *fleetv1.ClusterGroup) []GroupEvent {
	var out []GroupEvent
	b, a := before.Status.Clusters, after.Status.Clusters
	first := conditions.Get(before, meta.ReadyCondition) == nil
	if b.Total != a.Total && !(first && a.Total == 0) {
		out = append(out, GroupEvent{corev1.EventTypeNormal, MembersChangedReason,
			fmt.Sprintf("%d member clusters (were %d)", a.Total, b.Total)})
	}
	wasReady, isReady := readyStatus(before), readyStatus(after)
	if wasReady != isReady && isReady != "" {
		c := conditions.Get(after, meta.ReadyCondition)
		typ := corev1.EventTypeNormal
		if isReady != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		out = append(out, GroupEvent{typ, c.Reason, c.Message})
	}
	return out
}

func readyStatus(g *fleetv1.ClusterGroup) metav1.ConditionStatus {
	if c := conditions.Get(g, meta.ReadyCondition); c != nil {
		return c.Status
	}
	return ""
}

func recordGroupEvents(rec events.EventRecorder, before, after *fleetv1.ClusterGroup) {
	if rec == nil {
		return
	}
	for _, e := range GroupEvents(before, after) {
		rec.Eventf(after, nil, e.Type, e.Reason, "Rollup", "%s", e.Message)
	}
}
