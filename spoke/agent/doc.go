// Package agent is the spoke agent: it watches its cluster's Assignments on the hub,
// fetches and verifies their artifacts, applies them to the spoke, waits for their
// health, corrects drift at every resync, and reports back. It records what it
// applied on the spoke itself, so that it keeps correcting drift while the hub is
// unreachable, also after a restart.
package agent
