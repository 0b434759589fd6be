// Package controlplane starts local Kubernetes API servers (etcd and kube-apiserver
// built by hack/control-plane.sh) with the Flotilla CRDs installed, finds those
// binaries, and makes the one-line logger the local fleet and the tests share. It
// imports only the API and the install manifests, so every package's tests may use it
// without compiling the hub or the agent.
package controlplane
