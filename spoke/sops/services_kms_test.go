//go:build sopskms

package sops

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	awscredentials "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/kms"
	"github.com/google/go-cmp/cmp"
)

// These tests run sops' real key sources (hcvault, kms and their SDK clients) against
// stand-ins for Vault transit and AWS KMS written for the tests: the real services
// cannot be reached from here. They show that the agent built with -tags sopskms
// decrypts with the Secret's credentials, and with nothing else.

func TestVaultTransit(t *testing.T) {
	if !KeyServicesLinked() {
		t.Fatal("built with sopskms but key services are not linked")
	}
	vault := newFakeTransit(t, "team-token")
	doc := encrypt(t, secretYAML, "", false, recipients{services: []keys.MasterKey{vault.vaultKey("apps")}})
	want := toMap(t, []byte(secretYAML))

	t.Run("the Secret's token decrypts", func(t *testing.T) {
		out, err := parseKeys(t, map[string]string{VaultTokenKey: "team-token\n"}).DecryptYAML(doc)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, toMap(t, out)); diff != "" {
			t.Fatalf("decrypted (-want +got):\n%s", diff)
		}
	})
	t.Run("a wrong token is refused by Vault", func(t *testing.T) {
		_, err := parseKeys(t, map[string]string{VaultTokenKey: "other-team"}).DecryptYAML(doc)
		if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "/v1/transit/keys/apps") {
			t.Fatalf("error %v, want Vault's permission denied naming the key", err)
		}
	})
	t.Run("the agent's own token is never used", func(t *testing.T) {
		// The right token in the agent's environment and home: a tenant whose
		// Secret has none must not borrow it.
		t.Setenv("VAULT_TOKEN", "team-token")
		t.Setenv("HOME", t.TempDir())
		calls := vault.callCount()
		id := newAge(t)
		_, err := parseKeys(t, map[string]string{"unrelated.agekey": id.String()}).DecryptYAML(doc)
		if err == nil || !strings.Contains(err.Error(), "no "+VaultTokenKey+" entry in the decryption Secret") {
			t.Fatalf("error %v, want one about the missing %s", err, VaultTokenKey)
		}
		if n := vault.callCount(); n != calls {
			t.Fatalf("Vault was called %d times without a token from the Secret", n-calls)
		}
	})
	t.Run("SOPS_HC_VAULT_ALLOWLIST on the agent limits the addresses a file may name", func(t *testing.T) {
		t.Setenv("SOPS_HC_VAULT_ALLOWLIST", "https://vault.example.com/")
		calls := vault.callCount()
		_, err := parseKeys(t, map[string]string{VaultTokenKey: "team-token"}).DecryptYAML(doc)
		if err == nil || !strings.Contains(err.Error(), "Allowlist does not allow") {
			t.Fatalf("error %v, want the allowlist's refusal", err)
		}
		if n := vault.callCount(); n != calls {
			t.Fatalf("Vault at an address off the allowlist was called %d times", n-calls)
		}
		t.Setenv("SOPS_HC_VAULT_ALLOWLIST", vault.srv.URL)
		if _, err := parseKeys(t, map[string]string{VaultTokenKey: "team-token"}).DecryptYAML(doc); err != nil {
			t.Fatalf("allowed address: %v", err)
		}
	})
	t.Run("an age key of the file is used before Vault", func(t *testing.T) {
		id := newAge(t)
		both := encrypt(t, secretYAML, "", false, recipients{age: []string{id.Recipient().String()}, services: []keys.MasterKey{vault.vaultKey("apps")}})
		calls := vault.callCount()
		if _, err := parseKeys(t, map[string]string{"k.agekey": id.String(), VaultTokenKey: "team-token"}).DecryptYAML(both); err != nil {
			t.Fatal(err)
		}
		if n := vault.callCount(); n != calls {
			t.Fatalf("Vault was called %d times though the age key opens the file", n-calls)
		}
	})
}

// fakeKMS answers AWS KMS's Encrypt and Decrypt (JSON 1.1 protocol) for one access
// key ID, which it reads from the SigV4 Authorization header.
type fakeKMS struct {
	srv   *httptest.Server
	akid  string
	mu    sync.Mutex
	calls []string
}

func newFakeKMS(t *testing.T, akid string) *fakeKMS {
	f := &fakeKMS{akid: akid}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		f.mu.Lock()
		f.calls = append(f.calls, target)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+f.akid+"/") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`))
			return
		}
		var body struct {
			KeyID          string `json:"KeyId"`
			Plaintext      []byte
			CiphertextBlob []byte
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch target {
		case "TrentService.Encrypt":
			_ = json.NewEncoder(w).Encode(map[string]any{"KeyId": body.KeyID, "CiphertextBlob": append([]byte(body.KeyID+"|"), body.Plaintext...)})
		case "TrentService.Decrypt":
			key, plain, _ := strings.Cut(string(body.CiphertextBlob), "|")
			_ = json.NewEncoder(w).Encode(map[string]any{"KeyId": key, "Plaintext": []byte(plain)})
		default:
			http.Error(w, "unknown target "+target, http.StatusBadRequest)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKMS) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func TestAWSKMS(t *testing.T) {
	f := newFakeKMS(t, "AKIATEAM")
	// The SDK reads its endpoint from the environment; credentials come from the Secret only.
	t.Setenv("AWS_ENDPOINT_URL", f.srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAAGENT")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "agent-secret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	const arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	mk := kms.NewMasterKey(arn, "", nil)
	kms.NewCredentialsProvider(awscredentials.NewStaticCredentialsProvider("AKIATEAM", "team-secret", "")).ApplyToMasterKey(mk)
	doc := encrypt(t, secretYAML, "", false, recipients{services: []keys.MasterKey{mk}})

	out, err := parseKeys(t, map[string]string{AWSKMSKey: "aws_access_key_id: AKIATEAM\naws_secret_access_key: team-secret\n"}).DecryptYAML(doc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(toMap(t, []byte(secretYAML)), toMap(t, out)); diff != "" {
		t.Fatalf("decrypted (-want +got):\n%s", diff)
	}

	_, err = parseKeys(t, map[string]string{AWSKMSKey: "aws_access_key_id: AKIAOTHER\naws_secret_access_key: x\n"}).DecryptYAML(doc)
	if err == nil || !strings.Contains(err.Error(), "AWS KMS "+arn) || !strings.Contains(err.Error(), "security token included in the request is invalid") {
		t.Fatalf("error %v, want KMS refusing other credentials", err)
	}

	// The agent's environment has credentials too (AKIAAGENT): they are never used.
	calls := f.callCount()
	_, err = parseKeys(t, map[string]string{"x.agekey": newAge(t).String()}).DecryptYAML(doc)
	if err == nil || !strings.Contains(err.Error(), "no "+AWSKMSKey+" entry") {
		t.Fatalf("error %v, want one about the missing %s", err, AWSKMSKey)
	}
	if f.callCount() != calls {
		t.Fatalf("KMS called without credentials from the Secret")
	}
}
