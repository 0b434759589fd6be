// Package apply owns putting an artifact's manifests onto the spoke: parsing them,
// server-side applying them in dependency order, and pruning what a new revision
// dropped, but only objects that still carry their Assignment's mark.
package apply
