// Package egress decides which network addresses the hub may dial on behalf of a
// tenant's object (a GitRepository, HelmRepository, OCIRepository or Provider), and
// holds the dialer hook that enforces it on the address actually dialed, after name
// resolution: a refusal carried by the request's context, so that one hub process
// can dial for the platform and for tenants alike.
package egress
