// Package rollout decides, without side effects, which targeted clusters may be handed
// a deployment's new revision now: at most maxUnavailable clusters moving at once,
// stage after stage, holding at paused stages and stopping when a cluster fails.
package rollout

import (
	"sort"
)

// Cluster is one targeted cluster as the planner sees it.
type Cluster struct {
	Name string
	// Stage is the index of the cluster's stage; len(stages) for the implicit last one.
	Stage int
	// OnTarget is true when the cluster's Assignment already carries the new spec.
	OnTarget bool
	// Ready is true when the agent reports the new spec Ready.
	Ready bool
	// Failed is true when the agent reports the new spec failed.
	Failed bool
}

// Stage is one step of a staged rollout.
type Stage struct {
	Name  string
	Pause bool
}

// Plan is the outcome: which clusters get the new spec now, and where the rollout stands.
type Plan struct {
	// Promote holds every cluster that should carry the new spec after this step
	// (those already on it included).
	Promote map[string]bool
	// Stage is the name of the stage in progress ("" without stages).
	Stage string
	// PausedAfter names the completed stage waiting for approval, if any.
	PausedAfter string
	// Failed names the clusters that failed the new spec; the rollout stops while any do.
	Failed []string
	// Updating counts clusters on the new spec but not Ready on it.
	Updating int
	// Waiting counts clusters not yet handed the new spec.
	Waiting int
}

// Done reports whether every cluster runs the new spec Ready.
func (p Plan) Done() bool { return p.Updating == 0 && p.Waiting == 0 && len(p.Failed) == 0 }

// Compute plans one step. maxUnavailable <= 0 means no limit; approved holds the
// names of paused stages the user let through for this revision.
func Compute(clusters []Cluster, stages []Stage, maxUnavailable int, approved map[string]bool) Plan {
	cs := append([]Cluster(nil), clusters...)
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Stage != cs[j].Stage {
			return cs[i].Stage < cs[j].Stage
		}
		return cs[i].Name < cs[j].Name
	})
	if maxUnavailable <= 0 {
		maxUnavailable = len(cs)
	}
	p := Plan{Promote: map[string]bool{}}
	for _, c := range cs {
		if !c.OnTarget {
			continue
		}
		p.Promote[c.Name] = true
		if !c.Ready {
			p.Updating++
		}
		if c.Failed {
			p.Failed = append(p.Failed, c.Name)
		}
	}
	budget := maxUnavailable - p.Updating
	// Walk the stages in order; the first one not fully Ready is where work happens.
	for i := 0; i <= len(stages) && len(p.Failed) == 0; i++ {
		var members []Cluster
		for _, c := range cs {
			if c.Stage == i {
				members = append(members, c)
			}
		}
		if len(members) == 0 {
			continue
		}
		if i < len(stages) {
			p.Stage = stages[i].Name
		} else {
			p.Stage = ""
		}
		complete := true
		for _, c := range members {
			if !c.OnTarget || !c.Ready {
				complete = false
			}
		}
		if complete {
			if i < len(stages) && stages[i].Pause && !approved[stages[i].Name] && laterWork(cs, i) {
				p.PausedAfter = stages[i].Name
				break
			}
			continue
		}
		for _, c := range members {
			if budget <= 0 {
				break
			}
			if !c.OnTarget {
				p.Promote[c.Name] = true
				budget--
				p.Updating++
			}
		}
		break
	}
	for _, c := range cs {
		if !p.Promote[c.Name] {
			p.Waiting++
		}
	}
	if len(stages) > 0 && p.Stage == "" && p.Done() {
		p.Stage = stages[len(stages)-1].Name
	}
	return p
}

func laterWork(cs []Cluster, stage int) bool {
	for _, c := range cs {
		if c.Stage > stage && (!c.OnTarget || !c.Ready) {
			return true
		}
	}
	return false
}

// MaxUnavailable resolves an int-or-percent against the number of targeted clusters:
// a percentage rounds down but allows at least one cluster.
func MaxUnavailable(value int, percent bool, targeted int) int {
	if !percent {
		return value
	}
	n := value * targeted / 100
	if n < 1 {
		n = 1
	}
	return n
}
