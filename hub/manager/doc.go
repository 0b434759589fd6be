// Package manager assembles the hub: it loads the signing key, starts the artifact
// server and runs every hub controller in one controller-runtime manager.
package manager
