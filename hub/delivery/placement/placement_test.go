package placement

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

func cluster(name string, l map[string]string) fleetv1.Cluster {
	return fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func TestSelect(t *testing.T) {
	now := metav1.Now()
	deleting := cluster("gone", map[string]string{"env": "prod"})
	deleting.DeletionTimestamp = &now
	clusters := []fleetv1.Cluster{
		cluster("c", map[string]string{"env": "prod", "region": "eu"}),
		cluster("a", map[string]string{"env": "dev"}),
		cluster("b", map[string]string{"env": "prod", "region": "us"}),
		deleting,
	}
	groups := []fleetv1.ClusterGroup{{
		ObjectMeta: metav1.ObjectMeta{Name: "eu"},
		Spec:       fleetv1.ClusterGroupSpec{ClusterSelector: metav1.LabelSelector{MatchLabels: map[string]string{"region": "eu"}}},
	}}
	for _, tc := range []struct {
		name    string
		p       deliveryv1.Placement
		want    []string
		missing []string
	}{
		{name: "empty placement targets nothing", p: deliveryv1.Placement{}, want: []string{}},
		{name: "empty selector targets all but deleted", p: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}}, want: []string{"a", "b", "c"}},
		{name: "label", p: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}, want: []string{"b", "c"}},
		{name: "group", p: deliveryv1.Placement{ClusterGroups: []string{"eu"}}, want: []string{"c"}},
		{name: "selector or group", p: deliveryv1.Placement{
			ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}},
			ClusterGroups:   []string{"eu", "nope"},
		}, want: []string{"a", "c"}, missing: []string{"nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Select(tc.p, clusters, groups)
			if err != nil {
				t.Fatal(err)
			}
			got := append([]string{}, res.Names()...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("clusters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.missing, res.MissingGroups); diff != "" {
				t.Errorf("missing groups (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSelectInvalidSelector(t *testing.T) {
	p := deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Bogus"}}}}
	if _, err := Select(p, nil, nil); err == nil {
		t.Fatal("want an error for an invalid operator")
	}
}
