// Package env is the test harness every package's real-API-server tests share: it
// finds (or builds, once) the control-plane binaries, starts control planes with the
// Flotilla CRDs (several at once with StartControlPlanes), makes one run workloads
// (StartNodes: kube-controller-manager and kwok), installs the test logger and gives
// polling helpers that fail with clear messages. Shared lets a package's tests share
// what is slow to start, started by the first test that asks and stopped after the
// last one (TestMain calls Main). It compiles neither the hub nor the agent;
// test/fleetenv starts a whole fleet on top of it.
package env
