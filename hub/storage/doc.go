// Package storage owns the hub's content-addressed artifact store: tar.gz files kept
// under their sha256 digest, on disk (Store) or as one-layer manifests in an OCI
// registry repository (OCIStore), and served to agents over HTTP by the hub.
package storage
