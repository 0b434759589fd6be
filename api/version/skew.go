package version

import (
	"github.com/Masterminds/semver/v3"
)

// MaxMinorSkew is how many minor versions an agent may be behind or ahead of its hub
// and keep working: the hub never removes a field or behaviour an agent one minor
// older relies on, and an agent tolerates a hub one minor older. During an agent
// upgrade (the hub first, then its agents stage by stage) the fleet is at most one
// minor apart.
const MaxMinorSkew = 1

// MinorSkew is agent's minor version minus hub's, when both are release versions of
// the same major; ok is false otherwise ("dev" builds, unparsable versions, another
// major, which is never compatible and reported by Compatible).
func MinorSkew(agent, hub string) (skew int, ok bool) {
	a, errA := semver.NewVersion(agent)
	h, errH := semver.NewVersion(hub)
	if errA != nil || errH != nil || a.Major() != h.Major() {
		return 0, false
	}
	return int(a.Minor()) - int(h.Minor()), true
}

// Compatible says whether an agent of version agent works with a hub of version hub,
// by the rule of MaxMinorSkew; a version that is not a release (e.g. "dev") is taken
// to be compatible, since development builds are not versioned.
func Compatible(agent, hub string) bool {
	a, errA := semver.NewVersion(agent)
	h, errH := semver.NewVersion(hub)
	if errA != nil || errH != nil {
		return true
	}
	if a.Major() != h.Major() {
		return false
	}
	d := int(a.Minor()) - int(h.Minor())
	return d <= MaxMinorSkew && d >= -MaxMinorSkew
}
