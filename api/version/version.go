// Package version holds the build's version string, set by the Makefile's -ldflags.
package version

// Version of this build.
var Version = "dev"
