// Package agent is the spoke agent: it watches its cluster's Assignments on the hub,
// fetches and verifies their artifacts, applies them to the spoke, and reports back.
package agent
