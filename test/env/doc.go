// Package env is the test harness every package's real-API-server tests share: it
// finds (or builds, once) the control-plane binaries, starts single control planes
// with the Flotilla CRDs, installs the test logger and gives polling helpers that fail
// with clear messages. It compiles neither the hub nor the agent; test/fleetenv starts
// a whole fleet on top of it.
package env
