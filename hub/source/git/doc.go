// Package git owns the GitRepository controller: it fetches each repository at its
// ref (branch, tag, semver range, commit or full ref name), copies in the artifacts of
// the repositories its spec.include names, and stores the files as an artifact in the
// hub's storage.
package git
