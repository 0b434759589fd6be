package versions

import (
	"fmt"
	"sort"

	"github.com/Masterminds/semver/v3"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

// Range parses a semver range. One that does not parse is Stalled with reason
// InvalidSemVer: only a spec change helps.
func Range(rng string) (*semver.Constraints, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return nil, outcome.Fail(outcome.Stalled, sourcev1.InvalidSemVerReason, fmt.Errorf("invalid semver range %q: %w", rng, err))
	}
	return c, nil
}

// Newest returns the candidate with the highest version in c, ignoring those that
// are not versions; prereleases count only where c asks for them, as Masterminds
// semver checks. Of equal versions (v1.0.0 and 1.0.0) the name that sorts last wins,
// so that the choice does not depend on the order the server listed them in.
func Newest(candidates []string, c *semver.Constraints) (string, bool) {
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	var best string
	var bestV *semver.Version
	for _, name := range sorted {
		v, err := semver.NewVersion(name)
		if err != nil || !c.Check(v) {
			continue
		}
		if bestV == nil || !v.LessThan(bestV) {
			best, bestV = name, v
		}
	}
	return best, bestV != nil
}
