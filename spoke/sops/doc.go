// Package sops decrypts SOPS-encrypted Secrets on the spoke, with age and OpenPGP
// private keys that never leave it, and, in agents built with the sopskms tag, with
// keys held by HashiCorp Vault transit, AWS KMS, GCP KMS and Azure Key Vault.
//
// It reads the SOPS format itself (metadata, AES-GCM values, MAC) and uses only the
// age, shamir and logging packages of github.com/getsops/sops/v3 by default: the rest
// of sops (its tree, stores and key services) links every cloud KMS SDK, which the
// default agent does not carry. services_kms.go (build tag sopskms) links sops' hcvault,
// kms, gcpkms and azkv key sources, each given only the credentials of the tenant's
// decryption Secret (sops.vault-token, sops.aws-kms, sops.gcp-kms, sops.azure-kv).
// Without the tag, a file that only such a key opens is refused with a message that
// names the tag and the flotilla-agent-kms image.
package sops
