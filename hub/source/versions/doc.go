// Package versions owns picking by semver range for every source kind: the newest
// Git tag, OCI tag or Helm chart version that satisfies spec.ref.semver (or a
// HelmRelease's version range), with one rule for ties and one failure class for a
// range that does not parse.
package versions
