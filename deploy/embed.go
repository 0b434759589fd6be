// Package deploy holds the manifests Flotilla installs: the CRDs generated from api/
// and, later, the hub's and agent's install manifests. They are embedded so that the
// binaries can install them without a checkout.
package deploy

import "embed"

// CRDs holds deploy/crds/*.yaml.
//
//go:embed crds/*.yaml
var CRDs embed.FS
