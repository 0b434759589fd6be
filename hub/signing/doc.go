// Package signing owns the hub's keyring: the ed25519 keys in the Secret
// flotilla-system/flotilla-signing-key (load, generate, rotate, retire), the key that
// signs new artifacts, and the trust bundle the hub publishes to every cluster
// namespace so that agents learn about a rotation from a key they already trust.
package signing
