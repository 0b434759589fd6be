// Package sops decrypts SOPS-encrypted Secrets on the spoke, with age and OpenPGP
// private keys that never leave it.
//
// It reads the SOPS format itself (metadata, AES-GCM values, MAC) and uses only the
// age, shamir and logging packages of github.com/getsops/sops/v3: the rest of sops (its tree,
// stores and key services) links every cloud KMS SDK, which the agent must not carry.
// Cloud KMS keys (AWS, GCP, Azure, Vault) are therefore not supported on the spoke.
package sops
