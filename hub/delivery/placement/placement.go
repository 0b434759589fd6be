// Package placement decides which clusters a deployment targets: those matching its
// cluster selector, and the members of the cluster groups it lists.
package placement

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Result is the outcome of a placement.
type Result struct {
	// Clusters are the targeted clusters, sorted by name.
	Clusters []fleetv1.Cluster
	// MissingGroups names listed groups that do not exist.
	MissingGroups []string
}

// Names returns the targeted cluster names.
func (r Result) Names() []string {
	out := make([]string, len(r.Clusters))
	for i, c := range r.Clusters {
		out[i] = c.Name
	}
	return out
}

// Select returns the clusters p targets. A nil selector selects nothing; an empty one
// selects every cluster. Clusters being deleted are never targeted.
func Select(p deliveryv1.Placement, clusters []fleetv1.Cluster, groups []fleetv1.ClusterGroup) (Result, error) {
	var selectors []labels.Selector
	if p.ClusterSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(p.ClusterSelector)
		if err != nil {
			return Result{}, fmt.Errorf("invalid clusterSelector: %w", err)
		}
		selectors = append(selectors, s)
	}
	byName := make(map[string]*fleetv1.ClusterGroup, len(groups))
	for i := range groups {
		byName[groups[i].Name] = &groups[i]
	}
	var res Result
	for _, name := range p.ClusterGroups {
		g, ok := byName[name]
		if !ok {
			res.MissingGroups = append(res.MissingGroups, name)
			continue
		}
		s, err := metav1.LabelSelectorAsSelector(&g.Spec.ClusterSelector)
		if err != nil {
			return Result{}, fmt.Errorf("cluster group %s has an invalid selector: %w", name, err)
		}
		selectors = append(selectors, s)
	}
	for _, c := range clusters {
		if c.DeletionTimestamp != nil {
			continue
		}
		set := labels.Set(c.Labels)
		for _, s := range selectors {
			if s.Matches(set) {
				res.Clusters = append(res.Clusters, c)
				break
			}
		}
	}
	sort.Slice(res.Clusters, func(i, j int) bool { return res.Clusters[i].Name < res.Clusters[j].Name })
	sort.Strings(res.MissingGroups)
	return res, nil
}

// Members returns the names of the clusters a group's selector matches, sorted.
func Members(g fleetv1.ClusterGroup, clusters []fleetv1.Cluster) ([]string, error) {
	res, err := Select(deliveryv1.Placement{ClusterSelector: &g.Spec.ClusterSelector}, clusters, nil)
	if err != nil {
		return nil, err
	}
	return res.Names(), nil
}
