package deploy

import _ "embed"

// AgentManifests is the template of what installs an agent on a spoke (deploy/agent);
// hub/registration renders it with the cluster's bootstrap values.
//
//go:embed agent/agent.yaml.tmpl
var AgentManifests string
