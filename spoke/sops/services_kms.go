//go:build sopskms

package sops

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	awscredentials "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/getsops/sops/v3/azkv"
	"github.com/getsops/sops/v3/gcpkms"
	"github.com/getsops/sops/v3/hcvault"
	"github.com/getsops/sops/v3/kms"
)

// This file is built only with -tags sopskms (the flotilla-agent-kms image): it
// links sops' key sources for Vault transit and the cloud KMS services, with their
// SDKs.

func init() { serviceDecrypt = decryptWithKeySource }

// decryptWithKeySource hands one key to sops' own key source for its service, with
// the credentials of the decryption Secret applied, so that the key source never
// falls back to the agent's environment for credentials.
func decryptWithKeySource(ctx context.Context, k ServiceKey, c *ServiceCredentials) ([]byte, error) {
	switch k.Service {
	case Vault:
		mk := hcvault.NewMasterKey(k.VaultAddress, k.EnginePath, k.KeyName)
		mk.EncryptedKey = k.Enc
		hcvault.Token(c.VaultToken).ApplyToMasterKey(mk)
		return mk.DecryptContext(ctx)
	case AWSKMS:
		mk := kms.NewMasterKey(k.ARN, k.Role, k.Context)
		mk.EncryptedKey = k.Enc
		kms.NewCredentialsProvider(awscredentials.NewStaticCredentialsProvider(
			c.AWS.AccessKeyID, c.AWS.SecretAccessKey, c.AWS.SessionToken)).ApplyToMasterKey(mk)
		return mk.DecryptContext(ctx)
	case GCPKMS:
		mk := gcpkms.NewMasterKeyFromResourceID(k.ResourceID)
		mk.EncryptedKey = k.Enc
		gcpkms.CredentialJSON(c.GCP).ApplyToMasterKey(mk)
		return mk.DecryptContext(ctx)
	case AzureKV:
		var opts *azidentity.ClientSecretCredentialOptions
		if c.Azure.AuthorityHost != "" {
			opts = &azidentity.ClientSecretCredentialOptions{}
			opts.Cloud.ActiveDirectoryAuthorityHost = c.Azure.AuthorityHost
		}
		cred, err := azidentity.NewClientSecretCredential(c.Azure.TenantID, c.Azure.ClientID, c.Azure.ClientSecret, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", AzureKVKey, err)
		}
		mk := azkv.NewMasterKey(k.VaultURL, k.Name, k.Version)
		mk.EncryptedKey = k.Enc
		azkv.NewTokenCredential(azcore.TokenCredential(cred)).ApplyToMasterKey(mk)
		return mk.DecryptContext(ctx)
	}
	return nil, fmt.Errorf("unknown key service %q", k.Service)
}
