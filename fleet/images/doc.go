// Package images builds the flotilla-hub and flotilla-agent container images
// without a container engine: static binaries cross-compiled by the Go toolchain,
// laid on a minimal base (a nonroot user, a CA bundle), as a multi-platform OCI
// index written to an OCI layout or pushed to a registry with go-containerregistry.
package images
