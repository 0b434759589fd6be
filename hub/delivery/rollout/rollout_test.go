package rollout

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func names(m map[string]bool) []string {
	var out []string
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if m[n] {
			out = append(out, n)
		}
	}
	return out
}

func TestCompute(t *testing.T) {
	fresh := func(ns ...string) []Cluster {
		var out []Cluster
		for _, n := range ns {
			out = append(out, Cluster{Name: n})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		clusters []Cluster
		stages   []Stage
		max      int
		approved map[string]bool
		promote  []string
		paused   string
		stage    string
		failed   []string
		updating int
		waiting  int
	}{
		{name: "no limit moves all", clusters: fresh("a", "b", "c"), promote: []string{"a", "b", "c"}, updating: 3},
		{name: "one at a time in name order", clusters: fresh("c", "a", "b"), max: 1, promote: []string{"a"}, updating: 1, waiting: 2},
		{name: "an unready cluster holds the budget", max: 1,
			clusters: []Cluster{{Name: "a", OnTarget: true}, {Name: "b"}, {Name: "c"}},
			promote:  []string{"a"}, updating: 1, waiting: 2},
		{name: "a ready cluster frees the budget", max: 1,
			clusters: []Cluster{{Name: "a", OnTarget: true, Ready: true}, {Name: "b"}, {Name: "c"}},
			promote:  []string{"a", "b"}, updating: 1, waiting: 1},
		{name: "a failure stops the rollout", max: 2,
			clusters: []Cluster{{Name: "a", OnTarget: true, Failed: true}, {Name: "b"}, {Name: "c"}},
			promote:  []string{"a"}, failed: []string{"a"}, updating: 1, waiting: 2},
		{name: "stages go in order", stages: []Stage{{Name: "canary"}},
			clusters: []Cluster{{Name: "a", Stage: 1}, {Name: "b", Stage: 1}, {Name: "c", Stage: 0}},
			promote:  []string{"c"}, stage: "canary", updating: 1, waiting: 2},
		{name: "next stage after the canary is ready", stages: []Stage{{Name: "canary"}},
			clusters: []Cluster{{Name: "a", Stage: 1}, {Name: "b", Stage: 1}, {Name: "c", Stage: 0, OnTarget: true, Ready: true}},
			promote:  []string{"a", "b", "c"}, updating: 2},
		{name: "a paused stage holds", stages: []Stage{{Name: "canary", Pause: true}},
			clusters: []Cluster{{Name: "a", Stage: 1}, {Name: "c", Stage: 0, OnTarget: true, Ready: true}},
			promote:  []string{"c"}, paused: "canary", stage: "canary", waiting: 1},
		{name: "an approved stage goes on", stages: []Stage{{Name: "canary", Pause: true}}, approved: map[string]bool{"canary": true},
			clusters: []Cluster{{Name: "a", Stage: 1}, {Name: "c", Stage: 0, OnTarget: true, Ready: true}},
			promote:  []string{"a", "c"}, updating: 1},
		{name: "empty stages are skipped", stages: []Stage{{Name: "none", Pause: true}, {Name: "canary"}},
			clusters: []Cluster{{Name: "a", Stage: 2}}, promote: []string{"a"}, updating: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute(tc.clusters, tc.stages, tc.max, tc.approved)
			if diff := cmp.Diff(tc.promote, names(p.Promote)); diff != "" {
				t.Errorf("promote (-want +got):\n%s", diff)
			}
			if p.PausedAfter != tc.paused || p.Stage != tc.stage {
				t.Errorf("paused %q stage %q, want %q %q", p.PausedAfter, p.Stage, tc.paused, tc.stage)
			}
			if diff := cmp.Diff(tc.failed, p.Failed); diff != "" {
				t.Errorf("failed: %s", diff)
			}
			if p.Updating != tc.updating || p.Waiting != tc.waiting {
				t.Errorf("updating %d waiting %d, want %d %d", p.Updating, p.Waiting, tc.updating, tc.waiting)
			}
		})
	}
}

func TestMaxUnavailable(t *testing.T) {
	for _, tc := range []struct {
		v, targeted, want int
		pct               bool
	}{
		{v: 2, targeted: 10, want: 2},
		{v: 25, pct: true, targeted: 10, want: 2},
		{v: 10, pct: true, targeted: 3, want: 1},
		{v: 100, pct: true, targeted: 7, want: 7},
	} {
		if got := MaxUnavailable(tc.v, tc.pct, tc.targeted); got != tc.want {
			t.Errorf("%+v: got %d", tc, got)
		}
	}
}
