// Package bootstrap is the agent's side of registration: it trades the bootstrap
// token from the spoke Secret flotilla-system/flotilla-agent-bootstrap for a hub
// credential, keeps that credential in flotilla-system/flotilla-agent-hub so later
// starts reuse it, and runs the agent with it, registering again when the hub stops
// accepting it (after `flotilla cluster rotate`).
package bootstrap
