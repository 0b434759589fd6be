// Package git owns the GitRepository controller: it fetches each repository at its
// ref and stores the checked-out files as an artifact in the hub's storage.
package git
