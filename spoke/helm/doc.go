// Package helm runs the Helm release of an Assignment on the spoke with Helm's own
// actions (install, upgrade, test, rollback, uninstall) as the Assignment's identity,
// keeps the release history in Helm's Secret storage, decides each reconcile's action
// and remediation, recovers releases an interrupted agent left pending, and checks
// the release's objects for drift.
package helm
