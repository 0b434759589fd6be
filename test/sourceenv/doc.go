// Package sourceenv is the harness of the source controllers' tests (hub/source/git,
// oci and helm): one control plane with a manager running the controller under test,
// its artifacts kept in a Store and served over HTTP, and the helpers those tests
// share to create objects, request reconciles, wait for conditions and download
// artifacts. Each test package starts one Hub and gives each test its own namespace.
package sourceenv
