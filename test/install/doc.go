// Package install tests the way onto a real cluster: the images (built, pushed to a
// registry and pulled back), the install manifests (kustomize build, `flotilla
// install`), and the hub run with exactly the identity and RBAC they give it.
package install
