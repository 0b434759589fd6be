package fleet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

func TestGroupEvents(t *testing.T) {
	group := func(total, ready int32, status metav1.ConditionStatus) *fleetv1.ClusterGroup {
		g := &fleetv1.ClusterGroup{}
		g.Status.Clusters = fleetv1.ClusterMemberCounts{Total: total, Ready: ready}
		if status != "" {
			reason := meta.SucceededReason
			if status != metav1.ConditionTrue {
				reason = meta.ClustersFailedReason
			}
			conditions.Set(g, meta.ReadyCondition, status, reason, "msg")
		}
		return g
	}
	for _, c := range []struct {
		name          string
		before, after *fleetv1.ClusterGroup
		want          []GroupEvent
	}{
		{"first look, no members", group(0, 0, ""), group(0, 0, metav1.ConditionTrue),
			[]GroupEvent{{"Normal", meta.SucceededReason, "msg"}}},
		{"first look, members", group(0, 0, ""), group(2, 2, metav1.ConditionTrue),
			[]GroupEvent{{"Normal", MembersChangedReason, "2 member clusters (were 0)"}, {"Normal", meta.SucceededReason, "msg"}}},
		{"a member joins, still ready", group(2, 2, metav1.ConditionTrue), group(3, 3, metav1.ConditionTrue),
			[]GroupEvent{{"Normal", MembersChangedReason, "3 member clusters (were 2)"}}},
		{"a member goes unready", group(3, 3, metav1.ConditionTrue), group(3, 2, metav1.ConditionFalse),
			[]GroupEvent{{"Warning", meta.ClustersFailedReason, "msg"}}},
		{"nothing a user sees", group(3, 2, metav1.ConditionFalse), group(3, 2, metav1.ConditionFalse), nil},
	} {
		if diff := cmp.Diff(c.want, GroupEvents(c.before, c.after)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestVersionSkew(t *testing.T) {
	c := &fleetv1.Cluster{}
	c.Status.AgentVersion = "v0.2.0"
	if !VersionSkew(c, "v0.4.0") || !conditions.IsTrue(c, meta.AgentVersionSkewCondition) {
		t.Fatalf("two minors apart: conditions %+v", c.Status.Conditions)
	}
	if VersionSkew(c, "v0.4.0") {
		t.Error("an unchanged skew is reported as new again")
	}
	c.Status.AgentVersion = "v0.3.5"
	if VersionSkew(c, "v0.4.0") || conditions.Get(c, meta.AgentVersionSkewCondition) != nil {
		t.Errorf("one minor apart: conditions %+v", c.Status.Conditions)
	}
}
