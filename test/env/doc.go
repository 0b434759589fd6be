// Package env is the integration-test harness: it starts local fleets and single
// control planes (building the control-plane binaries first when they are missing),
// and gives tests clients and polling helpers that fail with clear messages.
package env
