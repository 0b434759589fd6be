// Package reconcile owns the one reconcile loop of every source kind (GitRepository,
// OCIRepository, HelmRepository): reading the object, spec.suspend, the
// reconcile-requested-at annotation, the timeout, the kstatus conditions, the
// artifact and ArtifactInStorage, Events, metrics, requeueing and the one status
// patch. A kind gives only its Fetcher and a Kind description, so the kinds cannot
// drift apart in how they report.
package reconcile
