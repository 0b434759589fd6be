package fleet

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/rollup"
)

// GroupRollup counts a group's members and sums their Assignment counts. clusters
// are those its selector matched; a Cluster being deleted is no member, as placement
// targets it no more.
func GroupRollup(clusters []fleetv1.Cluster) (fleetv1.ClusterMemberCounts, meta.AssignmentCounts) {
	var cl fleetv1.ClusterMemberCounts
	var as meta.AssignmentCounts
	for i := range clusters {
		c := &clusters[i]
		if c.DeletionTimestamp != nil {
			continue
		}
		cl.Total++
		if conditions.IsTrue(c, meta.ReadyCondition) {
			cl.Ready++
		}
		as = rollup.Add(as, c.Status.Assignments)
	}
	return cl, as
}

// GroupReadiness is a group's Ready condition for its counts: True when every member
// is Ready and no Assignment failed (or there is no member), False otherwise.
func GroupReadiness(cl fleetv1.ClusterMemberCounts, as meta.AssignmentCounts) (ready bool, reason, message string) {
	switch {
	case cl.Total == 0:
		return true, meta.SucceededReason, "no member clusters"
	case cl.Ready < cl.Total || as.Failed > 0:
		return false, meta.ClustersFailedReason,
			fmt.Sprintf("%d of %d clusters ready; %d of %d assignments failed", cl.Ready, cl.Total, as.Failed, as.Total)
	default:
		return true, meta.SucceededReason,
			fmt.Sprintf("%d clusters ready; %d of %d assignments ready", cl.Total, as.Ready, as.Total)
	}
}

// RollupChanged reports whether a Cluster's update can change the rollup of a group
// it is or was in: its labels (membership), its deletion, its Ready condition or its
// Assignment counts. Anything else (a heartbeat time, versions, the namespace, spec)
// leaves every group as it was.
func RollupChanged(old, updated *fleetv1.Cluster) bool {
	return !labels.Equals(old.Labels, updated.Labels) ||
		(old.DeletionTimestamp == nil) != (updated.DeletionTimestamp == nil) ||
		conditions.IsTrue(old, meta.ReadyCondition) != conditions.IsTrue(updated, meta.ReadyCondition) ||
		old.Status.Assignments != updated.Status.Assignments
}

// GroupsSelecting names the groups whose selector matches any of the label sets,
// sorted. A group whose selector is invalid is left out: its status does not depend
// on any cluster.
func GroupsSelecting(groups []fleetv1.ClusterGroup, sets ...labels.Set) []string {
	var out []string
	for i := range groups {
		s, err := metav1.LabelSelectorAsSelector(&groups[i].Spec.ClusterSelector)
		if err != nil {
			continue
		}
		for _, set := range sets {
			if s.Matches(set) {
				out = append(out, groups[i].Name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}
