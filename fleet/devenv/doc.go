// Package devenv starts a whole fleet on one machine, in one process and without
// containers: real etcd and kube-apiserver processes for the hub and each spoke, the
// hub and one agent per spoke running in-process. `flotilla dev up` and the
// integration tests (test/fleetenv) are built on it.
package devenv
