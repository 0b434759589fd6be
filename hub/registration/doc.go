// Package registration owns how a spoke joins the hub: it issues single-use bootstrap
// tokens (only their hashes are stored), serves the /register endpoint that trades one
// for a long-lived credential scoped to the cluster's hub namespace, revokes that
// credential, and renders and applies the agent's install manifests on a spoke.
package registration
