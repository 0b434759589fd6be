// Package registry is a real OCI registry for tests (go-containerregistry's
// in-process registry over HTTP, optionally behind basic auth) with helpers that
// push artifacts the way `flux push artifact` makes them.
package registry
