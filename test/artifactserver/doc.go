// Package artifactserver serves signed artifacts over HTTP the way the hub's artifact
// server does, for agent tests and benchmarks that run without a hub: it packs and
// signs files with a key of its own and counts the downloads of each artifact.
package artifactserver
