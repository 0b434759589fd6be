// Package oci is the OCIRepository controller: it pulls an OCI artifact (by tag,
// newest semver tag or digest), unpacks its first layer safely and re-packs it into
// the hub's own artifact format in hub/storage.
package oci
