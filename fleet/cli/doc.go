// Package cli holds the commands of the flotilla CLI: the local development fleet
// (dev up/down), the fleet's health (status, get) and the everyday operations on
// sources and deployments (reconcile, suspend, resume).
package cli
