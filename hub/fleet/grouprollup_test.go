package fleet

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

func cluster(name string, ready metav1.ConditionStatus, counts meta.AssignmentCounts, lbls map[string]string) fleetv1.Cluster {
	c := fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	c.Status.Assignments = counts
	if ready != "" {
		c.Status.Conditions = []metav1.Condition{{Type: meta.ReadyCondition, Status: ready, Reason: "x"}}
	}
	return c
}

func TestGroupRollup(t *testing.T) {
	deleting := cluster("gone", metav1.ConditionTrue, meta.AssignmentCounts{Total: 9, Ready: 9}, nil)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	for _, tc := range []struct {
		name       string
		clusters   []fleetv1.Cluster
		members    fleetv1.ClusterMemberCounts
		counts     meta.AssignmentCounts
		ready      bool
		reason     string
		wantInText string
	}{
		{name: "no members", ready: true, reason: meta.SucceededReason, wantInText: "no member clusters"},
		{
			name: "all ready",
			clusters: []fleetv1.Cluster{
				cluster("a", metav1.ConditionTrue, meta.AssignmentCounts{Total: 2, Ready: 2}, nil),
				cluster("b", metav1.ConditionTrue, meta.AssignmentCounts{Total: 1}, nil),
			},
			members: fleetv1.ClusterMemberCounts{Total: 2, Ready: 2},
			counts:  meta.AssignmentCounts{Total: 3, Ready: 2},
			ready:   true, reason: meta.SucceededReason, wantInText: "2 clusters ready; 2 of 3 assignments ready",
		},
		{
			name: "one silent, one unknown",
			clusters: []fleetv1.Cluster{
				cluster("a", metav1.ConditionTrue, meta.AssignmentCounts{Total: 1, Ready: 1}, nil),
				cluster("b", metav1.ConditionFalse, meta.AssignmentCounts{Total: 1, Ready: 1}, nil),
				cluster("c", "", meta.AssignmentCounts{}, nil),
			},
			members: fleetv1.ClusterMemberCounts{Total: 3, Ready: 1},
			counts:  meta.AssignmentCounts{Total: 2, Ready: 2},
			ready:   false, reason: meta.ClustersFailedReason, wantInText: "1 of 3 clusters ready",
		},
		{
			name: "a failed assignment",
			clusters: []fleetv1.Cluster{
				cluster("a", metav1.ConditionTrue, meta.AssignmentCounts{Total: 2, Ready: 1, Failed: 1}, nil),
			},
			members: fleetv1.ClusterMemberCounts{Total: 1, Ready: 1},
			counts:  meta.AssignmentCounts{Total: 2, Ready: 1, Failed: 1},
			ready:   false, reason: meta.ClustersFailedReason, wantInText: "1 of 2 assignments failed",
		},
		{
			name:     "a deleting cluster is no member",
			clusters: []fleetv1.Cluster{deleting},
			ready:    true, reason: meta.SucceededReason, wantInText: "no member clusters",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, as := GroupRollup(tc.clusters)
			if cl != tc.members || as != tc.counts {
				t.Errorf("rollup %+v %+v, want %+v %+v", cl, as, tc.members, tc.counts)
			}
			ready, reason, msg := GroupReadiness(cl, as)
			if ready != tc.ready || reason != tc.reason || !strings.Contains(msg, tc.wantInText) {
				t.Errorf("readiness %v %s %q, want %v %s containing %q", ready, reason, msg, tc.ready, tc.reason, tc.wantInText)
			}
		})
	}
}

func TestRollupChanged(t *testing.T) {
	base := cluster("a", metav1.ConditionTrue, meta.AssignmentCounts{Total: 1, Ready: 1}, map[string]string{"env": "prod"})
	base.Status.LastHeartbeatTime = &metav1.Time{Time: time.Unix(100, 0)}
	base.Status.AgentVersion = "v1"
	for _, tc := range []struct {
		name   string
		change func(c *fleetv1.Cluster)
		want   bool
	}{
		{"nothing", func(*fleetv1.Cluster) {}, false},
		{"heartbeat time", func(c *fleetv1.Cluster) { c.Status.LastHeartbeatTime = &metav1.Time{Time: time.Unix(200, 0)} }, false},
		{"versions", func(c *fleetv1.Cluster) { c.Status.AgentVersion, c.Status.KubernetesVersion = "v2", "v1.36.0" }, false},
		{"spec", func(c *fleetv1.Cluster) { c.Spec.Variables = map[string]string{"x": "y"} }, false},
		{"ready message only", func(c *fleetv1.Cluster) { c.Status.Conditions[0].Message = "other" }, false},
		{"label value", func(c *fleetv1.Cluster) { c.Labels = map[string]string{"env": "dev"} }, true},
		{"label added", func(c *fleetv1.Cluster) { c.Labels = map[string]string{"env": "prod", "tier": "1"} }, true},
		{"ready flips", func(c *fleetv1.Cluster) { c.Status.Conditions[0].Status = metav1.ConditionFalse }, true},
		{"ready goes", func(c *fleetv1.Cluster) { c.Status.Conditions = nil }, true},
		{"assignment counts", func(c *fleetv1.Cluster) { c.Status.Assignments.Failed = 1 }, true},
		{"deletion", func(c *fleetv1.Cluster) { c.DeletionTimestamp = &metav1.Time{Time: time.Unix(300, 0)} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			updated := base.DeepCopy()
			tc.change(updated)
			if got := RollupChanged(&base, updated); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGroupsSelecting(t *testing.T) {
	group := func(name string, sel metav1.LabelSelector) fleetv1.ClusterGroup {
		return fleetv1.ClusterGroup{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: fleetv1.ClusterGroupSpec{ClusterSelector: sel}}
	}
	groups := []fleetv1.ClusterGroup{
		group("prod", metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}),
		group("dev", metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}),
		group("everyone", metav1.LabelSelector{}),
		group("eu", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "region", Operator: metav1.LabelSelectorOpIn, Values: []string{"eu"}}}}),
		group("broken", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "region", Operator: "Near"}}}),
	}
	for _, tc := range []struct {
		name string
		sets []labels.Set
		want []string
	}{
		{"no labels", []labels.Set{{}}, []string{"everyone"}},
		{"prod in eu", []labels.Set{{"env": "prod", "region": "eu"}}, []string{"eu", "everyone", "prod"}},
		{"moved from prod to dev", []labels.Set{{"env": "prod"}, {"env": "dev"}}, []string{"dev", "everyone", "prod"}},
		{"no sets", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := GroupsSelecting(groups, tc.sets...); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
