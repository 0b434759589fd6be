package helm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// Reasons of the Ready condition of a Helm Assignment, next to meta's Succeeded,
// Progressing and VerificationFailed.
const (
	// ChartFailedReason: the chart or its values cannot be used on the spoke; the
	// running release is left as it is.
	ChartFailedReason = "ChartFailed"
	// InstallFailedReason, UpgradeFailedReason: Helm's action failed.
	InstallFailedReason = "InstallFailed"
	UpgradeFailedReason = "UpgradeFailed"
	// TestFailedReason: the chart's tests failed.
	TestFailedReason = "TestFailed"
	// RetriesExhaustedReason: every attempt at this artifact failed; the agent waits
	// for a new one.
	RetriesExhaustedReason = "RetriesExhausted"
	// UninstallFailedReason: the release could not be uninstalled.
	UninstallFailedReason = "UninstallFailed"
	// StorageFailedReason: Helm's release storage could not be read or written.
	StorageFailedReason = "StorageFailed"
)

// FieldManager is the field manager of what Helm writes for the agent.
const FieldManager = "flotilla-helm"

// DefaultTimeout of Helm's actions when the Assignment sets none.
const DefaultTimeout = 5 * time.Minute

// Runner runs the releases of one spoke. Only the agent of the cluster operates its
// releases, and it does so through one Runner: a release pending in Helm's storage
// that no goroutine of this Runner is operating was interrupted, and is recovered.
type Runner struct {
	ids *identities
	log logr.Logger

	mu     sync.Mutex
	active map[string]bool // storage namespace/release name being operated
}

// New returns a Runner that reaches the spoke with cfg (the agent's own identity,
// which impersonates each Assignment's service account).
func New(cfg *rest.Config, log logr.Logger) *Runner {
	// Helm names its field manager after the process (the agent's binary) unless told;
	// the setting is Helm's, process-wide, and the agent is the one Helm user in it.
	if kube.ManagedFieldsManager == "" {
		kube.ManagedFieldsManager = FieldManager
	}
	return &Runner{ids: &identities{base: cfg, by: map[string]*identity{}}, log: log, active: map[string]bool{}}
}

// Request is one reconcile of a Helm Assignment.
type Request struct {
	Settings *meta.HelmReleaseSettings
	// Digest and Revision of the artifact; Files its verified content.
	Digest, Revision string
	Files            map[string][]byte
	// Vars are substituted in the values; nil for none.
	Vars map[string]string
	// Namespace is the release's namespace (the Assignment's target namespace).
	Namespace string
	// User is the identity every action runs as; "" for the agent's own.
	User string
	// Timeout of each action; DefaultTimeout when zero.
	Timeout time.Duration
	// Previous is the release status the Assignment reported last.
	Previous *fleetv1.ReleaseStatus
	// DriftCheck compares the release's objects with the spoke (a resync).
	DriftCheck bool
	// FieldManager corrects drift.
	FieldManager string
}

// Result is the outcome of a reconcile, for the Assignment's status.
type Result struct {
	Release fleetv1.ReleaseStatus
	// Deployed: the release runs the requested digest.
	Deployed bool
	// Ready: deployed, and tests passed or are ignored.
	Ready bool
	// Stalled: nothing more happens until the Assignment changes.
	Stalled bool
	// Retry: a remediation ran, the next attempt should follow soon.
	Retry bool
	// Acted: an install, upgrade, rollback or uninstall ran (worth an Event).
	Acted   bool
	Reason  string
	Message string
	// Objects in the release's manifest.
	Objects int
	// Drifted objects found by a drift check (corrected unless the mode is warn).
	Drifted  []Drift
	Checked  bool // a drift check ran
	WarnOnly bool
}

// settings fills what the hub should have filled, so a nil never panics.
func settings(in *meta.HelmReleaseSettings) meta.HelmReleaseSettings {
	s := *in
	if s.Install == nil {
		s.Install = &meta.HelmInstall{CRDs: meta.CRDsCreate}
	}
	if s.Install.Remediation == nil {
		s.Install.Remediation = &meta.InstallRemediation{}
	}
	if s.Upgrade == nil {
		s.Upgrade = &meta.HelmUpgrade{CRDs: meta.CRDsSkip}
	}
	if s.Upgrade.Remediation == nil {
		s.Upgrade.Remediation = &meta.UpgradeRemediation{}
	}
	if s.Upgrade.Remediation.Strategy == "" {
		s.Upgrade.Remediation.Strategy = meta.RemediateRollback
	}
	if s.Test == nil {
		s.Test = &meta.HelmTest{}
	}
	if s.Rollback == nil {
		s.Rollback = &meta.HelmRollback{}
	}
	if s.Uninstall == nil {
		s.Uninstall = &meta.HelmUninstall{}
	}
	if s.DriftDetection == nil || s.DriftDetection.Mode == "" {
		s.DriftDetection = &meta.HelmDriftDetection{Mode: meta.HelmDriftDisabled}
	}
	if s.StorageNamespace == "" {
		s.StorageNamespace = "default"
	}
	return s
}

// lock marks a release as operated by this process; false when it already is.
func (r *Runner) lock(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active[key] {
		return false
	}
	r.active[key] = true
	return true
}

func (r *Runner) unlock(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.active, key)
}

// run is one reconcile's state.
type run struct {
	r      *Runner
	req    Request
	s      meta.HelmReleaseSettings
	cfg    *action.Configuration
	id     *identity
	chart  *chart.Chart
	values map[string]any
	// rawValues is values.yaml after substitution, valuesErr why it could not be.
	rawValues []byte
	valuesErr error
	timeout   time.Duration
	failures  int32
	actions   []string
	res       *Result
}

// Reconcile brings the release to the requested artifact, remediating failures as the
// settings say. It returns an error only for what is worth retrying with backoff
// (the spoke's API not answering); everything else is in the Result.
func (r *Runner) Reconcile(ctx context.Context, req Request) (*Result, error) {
	s := settings(req.Settings)
	key := s.StorageNamespace + "/" + s.ReleaseName
	if !r.lock(key) {
		return &Result{Reason: meta.ProgressingReason, Retry: true,
			Message: fmt.Sprintf("release %s is being operated by another reconcile of this agent", key)}, nil
	}
	defer r.unlock(key)

	// Substituted once: it names the release (releaseDigest) and is what Helm gets.
	values, valuesErr := substituteValues(req.Files, req.Vars)
	if valuesErr == nil {
		req.Digest = releaseDigest(req.Digest, req.Files[artifact.HelmValuesFile], values)
	}
	ru := &run{r: r, req: req, s: s, timeout: req.Timeout, res: &Result{}, rawValues: values, valuesErr: valuesErr}
	if ru.timeout <= 0 {
		ru.timeout = DefaultTimeout
	}
	if ru.req.Previous != nil && ru.req.Previous.AttemptedDigest == req.Digest {
		ru.failures = ru.req.Previous.Failures
	}
	var err error
	if ru.id, err = r.ids.get(req.User); err != nil {
		return nil, err
	}
	if ru.cfg, err = r.configuration(ru.id, s.StorageNamespace, req.Namespace); err != nil {
		return nil, err
	}
	if err := ru.reconcile(ctx); err != nil {
		if apierrors.IsForbidden(err) {
			// Not worth a quick retry: the identity lacks rights until someone grants them.
			ru.res.Release = fleetv1.ReleaseStatus{Name: s.ReleaseName, Namespace: s.StorageNamespace,
				Failures: ru.failures, AttemptedDigest: req.Digest}
			ru.stall(StorageFailedReason, fmt.Sprintf("release %s as %s, which is not allowed: %v", s.ReleaseName, who(req.User), err))
			return ru.res, nil
		}
		return nil, err
	}
	return ru.res, nil
}

// configuration is Helm's action configuration for one identity: release objects in
// namespace, release Secrets in storage.
func (r *Runner) configuration(id *identity, storage, namespace string) (*action.Configuration, error) {
	cfg := &action.Configuration{}
	log := func(format string, v ...any) { r.log.V(1).Info(fmt.Sprintf(format, v...)) }
	if err := cfg.Init(&getter{id: id, namespace: namespace}, storage, "secret", log); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (ru *run) reconcile(ctx context.Context) error {
	s, req, res := ru.s, ru.req, ru.res
	hist, err := ru.history()
	if err != nil {
		return err
	}
	if latest := last(hist); latest != nil && latest.Info.Status.IsPending() {
		// Nobody in this process operates it (the lock is ours): an agent stopped
		// in the middle of this action. Helm would refuse any action on it forever.
		if err := ru.markInterrupted(latest); err != nil {
			return err
		}
		if hist, err = ru.history(); err != nil {
			return err
		}
	}

	err = ru.valuesErr
	if err == nil {
		ru.chart, ru.values, err = loadChart(req.Files, ru.rawValues, req.Digest)
	}
	if err != nil {
		ru.describe(hist)
		ru.stall(ChartFailedReason, fmt.Sprintf("revision %s not released, the release is left as it runs: %v", req.Revision, err))
		return nil
	}

	obs := observe(hist)
	plan := Decide(obs, Desired{
		Digest: req.Digest, Failures: ru.failures,
		InstallRetries: s.Install.Remediation.Retries, UpgradeRetries: s.Upgrade.Remediation.Retries,
		UpgradeUninstalls: s.Upgrade.Remediation.Strategy == meta.RemediateUninstall,
	})
	ru.r.log.V(1).Info("helm plan", "release", s.ReleaseName, "plan", plan.String(), "failures", ru.failures)
	switch plan {
	case PlanStalled:
		ru.describe(hist)
		msg := fmt.Sprintf("%d attempts at revision %s failed, the retries are used up", ru.failures, req.Revision)
		if prev := req.Previous; prev != nil && prev.LastAction != "" {
			msg += "; last: " + prev.LastAction
			res.Release.LastAction = prev.LastAction
		}
		ru.stall(RetriesExhaustedReason, msg)
		return nil
	case PlanNothing:
		return ru.running(ctx, hist)
	case PlanReinstall:
		if err := ru.uninstall("remove the failed install"); err != nil {
			ru.describe(hist)
			ru.fail(InstallFailedReason, err.Error())
			return nil
		}
		return ru.install(ctx)
	case PlanInstall:
		return ru.install(ctx)
	case PlanRemediateUpgrade:
		if err := ru.remediateUpgrade(hist); err != nil {
			ru.describe(hist)
			ru.fail(UpgradeFailedReason, err.Error())
			return nil
		}
		hist, err = ru.history()
		if err != nil {
			return err
		}
		return ru.upgrade(ctx, hist)
	default:
		return ru.upgrade(ctx, hist)
	}
}

// install installs the release, then tests it.
func (ru *run) install(ctx context.Context) error {
	s := ru.s
	if err := ru.crds(ctx, s.Install.CRDs, true); err != nil {
		return ru.failed(ctx, "install", InstallFailedReason, err, false)
	}
	in := action.NewInstall(ru.cfg)
	in.ReleaseName = s.ReleaseName
	in.Namespace = ru.req.Namespace
	in.CreateNamespace = s.Install.CreateNamespace
	in.SkipCRDs = s.Install.CRDs != meta.CRDsCreate
	in.Wait = !s.Install.DisableWait
	in.Timeout = ru.timeout
	in.DisableHooks = s.Install.DisableHooks
	in.Replace = true // an uninstalled release kept in history is installed again
	in.Atomic = false // remediation is the agent's
	in.Description = "install of " + ru.req.Revision
	ru.cfg.Releases.MaxHistory = maxHistory(s)
	ru.res.Acted = true
	if _, err := in.RunWithContext(ctx, ru.chart, ru.values); err != nil {
		return ru.failed(ctx, "install", InstallFailedReason, err, false)
	}
	ru.actions = append(ru.actions, fmt.Sprintf("installed %s", ru.chartVersion()))
	return ru.succeeded(ctx, "install")
}

// upgrade upgrades the release, then tests it.
func (ru *run) upgrade(ctx context.Context, hist []*release.Release) error {
	s := ru.s
	if err := ru.crds(ctx, s.Upgrade.CRDs, false); err != nil {
		return ru.failed(ctx, "upgrade", UpgradeFailedReason, err, true)
	}
	up := action.NewUpgrade(ru.cfg)
	up.Namespace = ru.req.Namespace
	up.SkipCRDs = true // Helm never touches CRDs on upgrade; crds() did what the policy asks
	up.Wait = !s.Upgrade.DisableWait
	up.Timeout = ru.timeout
	up.DisableHooks = s.Upgrade.DisableHooks
	up.Force = s.Upgrade.Force
	up.CleanupOnFail = s.Upgrade.CleanupOnFail
	up.MaxHistory = maxHistory(s)
	up.Atomic = false
	up.ResetValues = true // the artifact's values are the whole values
	up.Description = "upgrade to " + ru.req.Revision
	ru.res.Acted = true
	if _, err := up.RunWithContext(ctx, s.ReleaseName, ru.chart, ru.values); err != nil {
		return ru.failed(ctx, "upgrade", UpgradeFailedReason, err, true)
	}
	ru.actions = append(ru.actions, fmt.Sprintf("upgraded to %s", ru.chartVersion()))
	return ru.succeeded(ctx, "upgrade")
}

// succeeded runs the tests of a release just installed or upgraded, and reports.
func (ru *run) succeeded(ctx context.Context, verb string) error {
	isUpgrade := verb == "upgrade"
	if ru.s.Test.Enable {
		if err := ru.test(); err != nil {
			if ru.s.Test.IgnoreFailures {
				ru.actions = append(ru.actions, "tests failed (ignored): "+err.Error())
			} else {
				return ru.failed(ctx, verb, TestFailedReason, fmt.Errorf("tests failed: %w", err), isUpgrade)
			}
		} else {
			ru.actions = append(ru.actions, "tests passed")
		}
	}
	ru.failures = 0
	hist, err := ru.history()
	if err != nil {
		return err
	}
	ru.describe(hist)
	ru.res.Deployed, ru.res.Ready = true, true
	ru.res.Reason = meta.SucceededReason
	ru.res.Message = ru.deployedMessage()
	return nil
}

// failed counts a failed attempt and remediates as the settings say: a failed
// install is uninstalled by the next attempt; a failed upgrade is rolled back (or
// uninstalled) now while retries last, or with remediateLastFailure.
func (ru *run) failed(ctx context.Context, verb, reason string, cause error, isUpgrade bool) error {
	s := ru.s
	ru.failures++
	what := fmt.Sprintf("%s to %s failed: %v", verb, ru.chartVersion(), cause)
	if !isUpgrade {
		what = fmt.Sprintf("install of %s failed: %v", ru.chartVersion(), cause)
	}
	ru.actions = append(ru.actions, what)
	testOnly := reason == TestFailedReason
	retries, ignoreTests := s.Install.Remediation.Retries, s.Install.Remediation.IgnoreTestFailures
	if isUpgrade {
		retries, ignoreTests = s.Upgrade.Remediation.Retries, s.Upgrade.Remediation.IgnoreTestFailures
	}
	left := ru.failures <= retries
	remediate := !(testOnly && ignoreTests)
	switch {
	case !remediate:
		// The release stays deployed, its tests failed: reported, not remediated.
	case isUpgrade && (left || s.Upgrade.Remediation.RemediateLastFailure):
		hist, err := ru.history()
		if err != nil {
			return err
		}
		if err := ru.remediateUpgrade(hist); err != nil {
			ru.actions = append(ru.actions, err.Error())
		}
	case !isUpgrade && testOnly && left:
		// A deployed release whose tests failed: uninstall it now, the next attempt
		// installs again.
		if err := ru.uninstall("remediate the failed tests"); err != nil {
			ru.actions = append(ru.actions, err.Error())
		}
	}
	hist, err := ru.history()
	if err != nil {
		return err
	}
	ru.describe(hist)
	if latest := last(hist); latest != nil && latest.Info.Status == release.StatusDeployed &&
		latest.Chart != nil && latest.Chart.Metadata.Annotations[DigestAnnotation] == ru.req.Digest {
		ru.res.Deployed = true
	}
	ru.res.Retry = left && remediate
	if left && remediate {
		ru.fail(reason, ru.res.Release.LastAction)
	} else {
		ru.stall(reason, ru.res.Release.LastAction)
	}
	_ = ctx
	return nil
}

// remediateUpgrade applies the upgrade's strategy to a failed upgrade.
func (ru *run) remediateUpgrade(hist []*release.Release) error {
	if ru.s.Upgrade.Remediation.Strategy == meta.RemediateUninstall {
		return ru.uninstall("remediate the failed upgrade")
	}
	target := lastDeployed(hist)
	if target == nil {
		return ru.uninstall("remediate the failed upgrade, with no revision to roll back to")
	}
	rb := action.NewRollback(ru.cfg)
	rb.Version = target.Version
	rb.Wait = !ru.s.Rollback.DisableWait
	rb.DisableHooks = ru.s.Rollback.DisableHooks
	rb.Force = ru.s.Rollback.Force
	rb.CleanupOnFail = ru.s.Rollback.CleanupOnFail
	rb.Timeout = ru.timeout
	rb.MaxHistory = maxHistory(ru.s)
	ru.res.Acted = true
	if err := rb.Run(ru.s.ReleaseName); err != nil {
		return fmt.Errorf("rollback to revision %d failed: %w", target.Version, err)
	}
	ru.actions = append(ru.actions, fmt.Sprintf("rolled back to revision %d", target.Version))
	return nil
}

// uninstall removes the release as a remediation (why says which).
func (ru *run) uninstall(why string) error {
	un := action.NewUninstall(ru.cfg)
	un.KeepHistory = false // a remediation starts over
	un.DisableHooks = ru.s.Uninstall.DisableHooks
	un.Wait = !ru.s.Uninstall.DisableWait
	un.Timeout = ru.timeout
	un.IgnoreNotFound = true
	un.Description = why
	ru.res.Acted = true
	if _, err := un.Run(ru.s.ReleaseName); err != nil {
		return fmt.Errorf("uninstall to %s failed: %w", why, err)
	}
	ru.actions = append(ru.actions, "uninstalled to "+why)
	return nil
}

// test runs the chart's test hooks.
func (ru *run) test() error {
	t := action.NewReleaseTesting(ru.cfg)
	t.Namespace = ru.req.Namespace
	t.Timeout = ru.timeout
	if ru.s.Test.Timeout != nil && ru.s.Test.Timeout.Duration > 0 {
		t.Timeout = ru.s.Test.Timeout.Duration
	}
	_, err := t.Run(ru.s.ReleaseName)
	return err
}

// running reports on a release that already runs the artifact: its tests (when the
// agent was stopped before they ran, they run now) and, at a resync, its drift.
func (ru *run) running(ctx context.Context, hist []*release.Release) error {
	latest := last(hist)
	if ru.s.Test.Enable {
		switch testState(latest) {
		case testsNotRun:
			return ru.succeeded(ctx, lastVerb(hist))
		case testsFailed:
			if !ru.s.Test.IgnoreFailures {
				ru.describe(hist)
				ru.res.Deployed = true
				if prev := ru.req.Previous; prev != nil && prev.LastAction != "" {
					ru.res.Release.LastAction = prev.LastAction
				}
				ru.stall(TestFailedReason, fmt.Sprintf("release %s revision %d is deployed but its tests failed", ru.s.ReleaseName, latest.Version))
				return nil
			}
		}
	}
	ru.failures = 0
	ru.describe(hist)
	if prev := ru.req.Previous; prev != nil && prev.LastAction != "" {
		ru.res.Release.LastAction = prev.LastAction
	}
	ru.res.Deployed, ru.res.Ready = true, true
	ru.res.Reason = meta.SucceededReason
	ru.res.Message = ru.deployedMessage()
	if ru.req.DriftCheck && ru.s.DriftDetection.Mode != meta.HelmDriftDisabled {
		warn := ru.s.DriftDetection.Mode == meta.HelmDriftWarn
		drifted, err := ru.drift(ctx, latest, warn)
		ru.res.Checked, ru.res.WarnOnly, ru.res.Drifted = true, warn, drifted
		if err != nil {
			ru.res.Ready = false
			ru.fail(meta.ApplyFailedReason, fmt.Sprintf("drift check of release %s: %v", ru.s.ReleaseName, err))
		}
	}
	return nil
}

// describe fills the release status from Helm's history.
func (ru *run) describe(hist []*release.Release) {
	st := &ru.res.Release
	st.Name, st.Namespace = ru.s.ReleaseName, ru.s.StorageNamespace
	st.Failures, st.AttemptedDigest = ru.failures, ru.req.Digest
	if len(ru.actions) > 0 {
		st.LastAction = strings.Join(ru.actions, "; ")
	}
	latest := last(hist)
	if latest == nil {
		st.Revision, st.Status, st.ChartVersion = 0, "", ""
		ru.res.Objects = 0
		return
	}
	st.Revision = int32(latest.Version)
	st.Status = latest.Info.Status.String()
	if latest.Chart != nil && latest.Chart.Metadata != nil {
		st.ChartVersion = latest.Chart.Metadata.Version
	}
	ru.res.Objects = len(manifestObjects(latest.Manifest))
}

func (ru *run) deployedMessage() string {
	st := ru.res.Release
	msg := fmt.Sprintf("release %s revision %d deployed: chart %s %s, revision %s", st.Name, st.Revision, ru.chartName(), st.ChartVersion, ru.req.Revision)
	if len(ru.actions) > 0 {
		msg += " (" + strings.Join(ru.actions, "; ") + ")"
	}
	return msg
}

func (ru *run) fail(reason, msg string) {
	ru.res.Reason, ru.res.Message = reason, msg
}

func (ru *run) stall(reason, msg string) {
	ru.res.Reason, ru.res.Message, ru.res.Stalled = reason, msg, true
}

func (ru *run) chartName() string {
	if ru.chart != nil {
		return ru.chart.Metadata.Name
	}
	return ru.s.Chart
}

func (ru *run) chartVersion() string {
	if ru.chart != nil {
		return ru.chart.Metadata.Version
	}
	return ru.s.ChartVersion
}

// history is the release's revisions, oldest first; none when it does not exist.
func (ru *run) history() ([]*release.Release, error) {
	hist, err := ru.cfg.Releases.History(ru.s.ReleaseName)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the history of release %s in %s: %w", ru.s.ReleaseName, ru.s.StorageNamespace, err)
	}
	releaseutil.SortByRevision(hist)
	return hist, nil
}

// markInterrupted turns a pending revision nobody operates into a failed one, so
// that Helm (and the remediation) can act on the release again.
func (ru *run) markInterrupted(rel *release.Release) error {
	was := rel.Info.Status
	rel.SetStatus(release.StatusFailed, fmt.Sprintf("%s interrupted: the agent stopped during the operation (marked failed by the agent)", was))
	if err := ru.cfg.Releases.Update(rel); err != nil {
		return fmt.Errorf("recovering release %s from %s: %w", rel.Name, was, err)
	}
	ru.r.log.Info("recovered an interrupted release", "release", rel.Name, "revision", rel.Version, "was", was.String())
	ru.actions = append(ru.actions, fmt.Sprintf("revision %d was left %s by an interrupted agent, marked failed", rel.Version, was))
	return nil
}

// Uninstall removes the release when its Assignment is released. It returns what
// happened, for people.
func (r *Runner) Uninstall(ctx context.Context, req Request) (string, error) {
	s := settings(req.Settings)
	key := s.StorageNamespace + "/" + s.ReleaseName
	if !r.lock(key) {
		return "", fmt.Errorf("release %s is being operated by another reconcile of this agent", key)
	}
	defer r.unlock(key)
	id, err := r.ids.get(req.User)
	if err != nil {
		return "", err
	}
	cfg, err := r.configuration(id, s.StorageNamespace, req.Namespace)
	if err != nil {
		return "", err
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	un := action.NewUninstall(cfg)
	un.KeepHistory = s.Uninstall.KeepHistory
	un.DisableHooks = s.Uninstall.DisableHooks
	un.Wait = !s.Uninstall.DisableWait
	un.Timeout = timeout
	un.Description = "the Assignment was released"
	resp, err := un.Run(s.ReleaseName)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Sprintf("release %s was not installed, nothing to uninstall", s.ReleaseName), nil
	}
	if err != nil {
		return "", fmt.Errorf("uninstalling release %s: %w", s.ReleaseName, err)
	}
	n := 0
	if resp != nil && resp.Release != nil {
		n = len(manifestObjects(resp.Release.Manifest))
	}
	_ = ctx
	return fmt.Sprintf("uninstalled release %s (%d objects)", s.ReleaseName, n), nil
}

// History returns the release's revisions as Helm's own history action reads them
// (as `helm history` shows them), oldest first.
func (r *Runner) History(req Request) ([]*release.Release, error) {
	s := settings(req.Settings)
	id, err := r.ids.get(req.User)
	if err != nil {
		return nil, err
	}
	cfg, err := r.configuration(id, s.StorageNamespace, req.Namespace)
	if err != nil {
		return nil, err
	}
	return action.NewHistory(cfg).Run(s.ReleaseName)
}

func observe(hist []*release.Release) Observed {
	latest := last(hist)
	if latest == nil || latest.Info.Status == release.StatusUninstalled || latest.Info.Status == release.StatusUninstalling {
		return Observed{}
	}
	obs := Observed{Exists: true, Status: latest.Info.Status.String(), HasDeployed: lastDeployed(hist) != nil || latest.Info.Status == release.StatusDeployed}
	if latest.Chart != nil && latest.Chart.Metadata != nil {
		obs.Digest = latest.Chart.Metadata.Annotations[DigestAnnotation]
	}
	return obs
}

func last(hist []*release.Release) *release.Release {
	if len(hist) == 0 {
		return nil
	}
	return hist[len(hist)-1]
}

// lastDeployed is the newest revision, before the latest, that was deployed.
func lastDeployed(hist []*release.Release) *release.Release {
	for i := len(hist) - 2; i >= 0; i-- {
		switch hist[i].Info.Status {
		case release.StatusDeployed, release.StatusSuperseded:
			return hist[i]
		}
	}
	return nil
}

func lastVerb(hist []*release.Release) string {
	if len(hist) > 1 {
		return "upgrade"
	}
	return "install"
}

type testResult int

const (
	testsNone testResult = iota
	testsNotRun
	testsPassed
	testsFailed
)

// testState reads the test hooks' last runs that Helm recorded in the revision.
func testState(rel *release.Release) testResult {
	state := testsNone
	for _, h := range rel.Hooks {
		if !slices.Contains(h.Events, release.HookTest) {
			continue
		}
		switch h.LastRun.Phase {
		case release.HookPhaseFailed:
			return testsFailed
		case release.HookPhaseSucceeded:
			if state == testsNone {
				state = testsPassed
			}
		default:
			state = testsNotRun
		}
	}
	return state
}

func maxHistory(s meta.HelmReleaseSettings) int {
	if s.MaxHistory != nil {
		return int(*s.MaxHistory)
	}
	return meta.DefaultMaxHistory
}
