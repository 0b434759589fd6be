// Package fleetenv starts a whole local fleet for a test: a hub and N spokes on real
// API servers with the real hub and one registered agent per spoke (fleet/devenv),
// stopped when the test ends, or, with Share, one fleet that a package's tests share.
// Tests that need only API servers use test/env.
package fleetenv
