// Package integration holds the end-to-end tests of the fleet: a real hub and real
// spokes (kube-apiservers), a real Git server, the real hub controllers and agents.
package integration
