// Package storage owns the hub's content-addressed artifact store: tar.gz files kept
// on disk under their sha256 digest and served to agents over HTTP.
package storage
