package helm

// Plan is what one reconcile does to a release.
type Plan int

const (
	// PlanNothing: the release runs the artifact; only drift and tests are looked at.
	PlanNothing Plan = iota
	// PlanInstall: there is no release (or only an uninstalled one): install it.
	PlanInstall
	// PlanReinstall: the release never deployed (a failed install): uninstall what
	// the failed attempt left, then install again.
	PlanReinstall
	// PlanUpgrade: the release runs another artifact: upgrade it.
	PlanUpgrade
	// PlanRemediateUpgrade: an upgrade to this artifact failed and was not remediated
	// (the agent stopped in between): apply the upgrade strategy, then upgrade again.
	PlanRemediateUpgrade
	// PlanStalled: the attempts at this artifact are used up; wait for a new one.
	PlanStalled
)

func (p Plan) String() string {
	return [...]string{"nothing", "install", "reinstall", "upgrade", "remediate and upgrade", "stalled"}[p]
}

// Observed is the release as Helm's storage holds it.
type Observed struct {
	// Exists: a latest revision exists and is not uninstalled.
	Exists bool
	// Status is Helm's status of the latest revision (deployed, failed, ...).
	Status string
	// Digest is the artifact digest the latest revision was made from.
	Digest string
	// HasDeployed: some revision of the history deployed (deployed or superseded),
	// so an upgrade has something to upgrade from and roll back to.
	HasDeployed bool
}

// Desired is what the Assignment asks for, and how often it was tried.
type Desired struct {
	Digest string
	// Failures of Digest so far (0 when the status counts another digest).
	Failures int32
	// Retries after a first failed install or upgrade.
	InstallRetries, UpgradeRetries int32
	// UpgradeUninstalls: the upgrade strategy is uninstall, so an install may follow
	// a failed upgrade and counts against the upgrade's retries.
	UpgradeUninstalls bool
}

// Decide chooses what to do with a release; it has no side effects.
func Decide(obs Observed, want Desired) Plan {
	installLeft := want.Failures <= want.InstallRetries ||
		(want.UpgradeUninstalls && want.Failures <= want.UpgradeRetries)
	upgradeLeft := want.Failures <= want.UpgradeRetries
	switch {
	case !obs.Exists:
		if !installLeft {
			return PlanStalled
		}
		return PlanInstall
	case obs.Digest == want.Digest && obs.Status == statusDeployed:
		return PlanNothing
	case !obs.HasDeployed:
		if !installLeft {
			return PlanStalled
		}
		return PlanReinstall
	case !upgradeLeft:
		return PlanStalled
	case obs.Digest == want.Digest:
		// Failed (or interrupted and marked failed) on this very artifact.
		return PlanRemediateUpgrade
	default:
		return PlanUpgrade
	}
}

const statusDeployed = "deployed"
