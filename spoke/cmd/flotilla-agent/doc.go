// Command flotilla-agent runs the spoke agent: it applies its cluster's Assignments
// from the hub and reports back.
package main
