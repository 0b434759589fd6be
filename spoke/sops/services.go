package sops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sigsyaml "sigs.k8s.io/yaml"
)

// Entries of a decryption Secret that hold credentials of key services, with the
// names Flux gives them.
const (
	// VaultTokenKey holds a HashiCorp Vault token allowed to use the transit keys.
	VaultTokenKey = "sops.vault-token"
	// AWSKMSKey holds YAML with aws_access_key_id, aws_secret_access_key and,
	// optionally, aws_session_token.
	AWSKMSKey = "sops.aws-kms"
	// AzureKVKey holds YAML or JSON with tenantId, clientId and clientSecret of a
	// service principal allowed to unwrap with the Key Vault keys.
	AzureKVKey = "sops.azure-kv"
	// GCPKMSKey holds a Google Cloud credentials JSON (a service account key).
	GCPKMSKey = "sops.gcp-kms"
)

// KMSBuildTag is the Go build tag that links the key services into the agent.
const KMSBuildTag = "sopskms"

// KMSAgentImage is the agent image built with KMSBuildTag.
const KMSAgentImage = "flotilla-agent-kms"

// Service is a key service that holds SOPS master keys itself.
type Service string

// The key services, by the name of their entry in a file's sops metadata.
const (
	Vault   Service = "hc_vault"
	AWSKMS  Service = "kms"
	GCPKMS  Service = "gcp_kms"
	AzureKV Service = "azure_kv"
)

// credentialKey is the Secret entry each service takes its credentials from.
var credentialKey = map[Service]string{Vault: VaultTokenKey, AWSKMS: AWSKMSKey, GCPKMS: GCPKMSKey, AzureKV: AzureKVKey}

var serviceNames = map[Service]string{Vault: "HashiCorp Vault transit", AWSKMS: "AWS KMS", GCPKMS: "GCP KMS", AzureKV: "Azure Key Vault"}

// ServiceKey is one master key of a SOPS file that a key service holds: the file
// names it and carries the data key encrypted with it (Enc).
type ServiceKey struct {
	Service Service
	// Vault: the server, the transit engine's path and the key's name.
	VaultAddress, EnginePath, KeyName string
	// AWS KMS: the key's ARN, a role to assume and the encryption context.
	ARN, Role string
	Context   map[string]*string
	// GCP KMS: the key's resource ID.
	ResourceID string
	// Azure Key Vault: the vault's URL, the key's name and version.
	VaultURL, Name, Version string
	// Enc is the data key (or its Shamir part), encrypted by the service.
	Enc string
}

// String names the key for people, without the encrypted data key.
func (k ServiceKey) String() string {
	var id string
	switch k.Service {
	case Vault:
		id = strings.TrimSuffix(k.VaultAddress, "/") + "/v1/" + k.EnginePath + "/keys/" + k.KeyName
	case AWSKMS:
		id = k.ARN
	case GCPKMS:
		id = k.ResourceID
	case AzureKV:
		id = strings.TrimSuffix(k.VaultURL, "/") + "/keys/" + k.Name + "/" + k.Version
	}
	return serviceNames[k.Service] + " " + id
}

// AWSCredentials are the static credentials of sops.aws-kms.
type AWSCredentials struct {
	AccessKeyID     string `json:"aws_access_key_id"`
	SecretAccessKey string `json:"aws_secret_access_key"`
	SessionToken    string `json:"aws_session_token,omitempty"`
}

// AzureCredentials are the service principal of sops.azure-kv.
type AzureCredentials struct {
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	// AuthorityHost is the Entra ID endpoint for clouds other than Azure's public one.
	AuthorityHost string `json:"authorityHost,omitempty"`
}

// ServiceCredentials are what a decryption Secret holds for key services. Only
// these are ever used: never the agent's own environment, files or cloud identity,
// which would let any tenant decrypt with the agent's rights.
type ServiceCredentials struct {
	VaultToken string
	AWS        *AWSCredentials
	Azure      *AzureCredentials
	GCP        []byte
}

// has reports whether there are credentials for s.
func (c *ServiceCredentials) has(s Service) bool {
	switch s {
	case Vault:
		return c.VaultToken != ""
	case AWSKMS:
		return c.AWS != nil
	case GCPKMS:
		return len(c.GCP) > 0
	case AzureKV:
		return c.Azure != nil
	}
	return false
}

func (c *ServiceCredentials) empty() bool {
	return c.VaultToken == "" && c.AWS == nil && c.Azure == nil && len(c.GCP) == 0
}

// parseServiceCredential reads one sops.* entry into c; it reports false for an
// entry that is not one.
func (c *ServiceCredentials) parse(name string, value []byte) (bool, error) {
	switch name {
	case VaultTokenKey:
		c.VaultToken = strings.TrimSpace(string(value))
		if c.VaultToken == "" {
			return true, errors.New("empty Vault token")
		}
	case AWSKMSKey:
		var a AWSCredentials
		if err := sigsyaml.UnmarshalStrict(value, &a); err != nil {
			return true, fmt.Errorf("not YAML with aws_access_key_id, aws_secret_access_key and aws_session_token: %w", err)
		}
		if a.AccessKeyID == "" || a.SecretAccessKey == "" {
			return true, errors.New("needs aws_access_key_id and aws_secret_access_key")
		}
		c.AWS = &a
	case AzureKVKey:
		var a AzureCredentials
		if err := sigsyaml.Unmarshal(value, &a); err != nil {
			return true, fmt.Errorf("not YAML or JSON with tenantId, clientId and clientSecret: %w", err)
		}
		if a.TenantID == "" || a.ClientID == "" || a.ClientSecret == "" {
			return true, errors.New("needs tenantId, clientId and clientSecret (other Azure credential kinds are not supported)")
		}
		c.Azure = &a
	case GCPKMSKey:
		var probe struct {
			Type string `json:"type"`
		}
		if err := sigsyaml.Unmarshal(value, &probe); err != nil || probe.Type == "" {
			return true, errors.New("not a Google Cloud credentials JSON (no type)")
		}
		c.GCP = value
	default:
		return false, nil
	}
	return true, nil
}

// serviceTimeout bounds one call to a key service.
const serviceTimeout = 30 * time.Second

// serviceDecrypt asks a key service to decrypt k.Enc with creds. It is nil unless
// the agent is built with the sopskms tag (services_kms.go): the SDKs of the cloud
// services would more than double the agent's size, and most fleets use age.
var serviceDecrypt func(ctx context.Context, k ServiceKey, creds *ServiceCredentials) ([]byte, error)

// KeyServicesLinked reports whether this binary can use key services.
func KeyServicesLinked() bool { return serviceDecrypt != nil }

// decryptWithService tries one key-service key. It never calls a service without
// credentials from the Secret: the libraries would fall back to the agent's own.
func (k *Keys) decryptWithService(sk ServiceKey) ([]byte, error) {
	if serviceDecrypt == nil {
		return nil, fmt.Errorf("this agent is built without key services: run the %s image (flotilla-agent built with -tags %s)", KMSAgentImage, KMSBuildTag)
	}
	if !k.services.has(sk.Service) {
		return nil, fmt.Errorf("no %s entry in the decryption Secret", credentialKey[sk.Service])
	}
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	return serviceDecrypt(ctx, sk, &k.services)
}
