// Package deploy holds the manifests Flotilla installs: the CRDs generated from api/,
// the hub's install (deploy/hub) and the agent's (deploy/agent), each a kustomize
// base. They are embedded so that the binaries install them without a checkout.
package deploy

import "embed"

// CRDs holds deploy/crds/*.yaml (and the kustomization.yaml that lists them).
//
//go:embed crds/*.yaml
var CRDs embed.FS

// Kustomizations holds the kustomize bases as they are in the repository: hub/
// (which includes crds/) and agent/. `flotilla install` builds hub/ from here.
//
//go:embed crds/*.yaml hub/*.yaml agent/*.yaml
var Kustomizations embed.FS

// Folders of Kustomizations.
const (
	HubKustomization   = "hub"
	AgentKustomization = "agent"
)
