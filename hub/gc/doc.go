// Package gc owns the garbage collection of the hub's artifact store: on an interval
// it deletes the artifacts that no source, deployment or Assignment references and
// that are not among the last few revisions of a source or deployment.
package gc
