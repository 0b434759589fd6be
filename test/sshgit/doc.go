// Package sshgit is a real Git server over SSH for tests: an in-process SSH server
// (golang.org/x/crypto/ssh) with a generated host key that accepts one client key
// and runs the real git-upload-pack for each fetch.
package sshgit
