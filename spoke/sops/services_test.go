package sops

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/getsops/sops/v3/hcvault"
	"github.com/getsops/sops/v3/keys"
)

// fakeTransit answers the two calls of Vault's transit engine that sops makes
// (encrypt and decrypt of a data key), for one token. It is a stand-in written for
// these tests, not Vault: no Vault binary can be had on this machine. Its
// "ciphertext" is the plaintext tagged with the key name, so only the same key opens it.
type fakeTransit struct {
	srv   *httptest.Server
	token string
	mu    sync.Mutex
	calls []string
}

func newFakeTransit(t *testing.T, token string) *fakeTransit {
	f := &fakeTransit{token: token}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if r.Header.Get("X-Vault-Token") != f.token {
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string][]string{"errors": {"permission denied"}})
			return
		}
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// /v1/<engine>/(encrypt|decrypt)/<key>
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
		if len(parts) != 3 {
			http.NotFound(w, r)
			return
		}
		op, key := parts[1], parts[2]
		data := map[string]string{}
		switch op {
		case "encrypt":
			data["ciphertext"] = "vault:v1:" + base64.StdEncoding.EncodeToString([]byte(key+":"+body["plaintext"]))
		case "decrypt":
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(body["ciphertext"], "vault:v1:"))
			plain, ok := strings.CutPrefix(string(raw), key+":")
			if err != nil || !ok {
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string][]string{"errors": {"cipher: message authentication failed"}})
				return
			}
			data["plaintext"] = plain
		default:
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTransit) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// vaultKey is a master key on f that encrypts with the right token, as
// `sops --hc-vault-transit` would.
func (f *fakeTransit) vaultKey(name string) keys.MasterKey {
	k := hcvault.NewMasterKey(f.srv.URL, "transit", name)
	hcvault.Token(f.token).ApplyToMasterKey(k)
	return k
}

// TestParseServiceCredentials: the sops.* entries parse as Flux documents them, and a
// broken one is an error naming it rather than a key silently missing.
func TestParseServiceCredentials(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    map[string]string
		wantErr string
		check   func(*Keys) bool
	}{
		{"vault token", map[string]string{VaultTokenKey: " s.token\n"}, "", func(k *Keys) bool { return k.services.VaultToken == "s.token" }},
		{"aws", map[string]string{AWSKMSKey: "aws_access_key_id: A\naws_secret_access_key: S\naws_session_token: T\n"}, "",
			func(k *Keys) bool {
				return *k.services.AWS == AWSCredentials{AccessKeyID: "A", SecretAccessKey: "S", SessionToken: "T"}
			}},
		{"azure json", map[string]string{AzureKVKey: `{"tenantId":"t","clientId":"c","clientSecret":"s"}`}, "",
			func(k *Keys) bool { return k.services.Azure.ClientSecret == "s" }},
		{"gcp", map[string]string{GCPKMSKey: `{"type":"service_account","project_id":"p"}`}, "", func(k *Keys) bool { return len(k.services.GCP) > 0 }},
		{"empty vault token", map[string]string{VaultTokenKey: "\n"}, VaultTokenKey + ": empty Vault token", nil},
		{"aws without secret", map[string]string{AWSKMSKey: "aws_access_key_id: A\n"}, AWSKMSKey + ": needs aws_access_key_id and aws_secret_access_key", nil},
		{"aws unknown field", map[string]string{AWSKMSKey: "aws_access_key_id: A\naws_secret_access_key: S\nregion: x\n"}, AWSKMSKey + ": not YAML", nil},
		{"azure managed identity", map[string]string{AzureKVKey: "clientId: c\n"}, "other Azure credential kinds are not supported", nil},
		{"gcp not json", map[string]string{GCPKMSKey: "hello"}, GCPKMSKey + ": not a Google Cloud credentials JSON", nil},
		{"other entries ignored", map[string]string{"sops.other": "x", "README": "y"}, "", func(k *Keys) bool { return k.Empty() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string][]byte{}
			for k, v := range tc.data {
				m[k] = []byte(v)
			}
			k, err := ParseKeys(m)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(k) {
				t.Fatalf("parsed %+v", k.services)
			}
		})
	}
}

// TestAgentLinksKeyServicesOnlyWithTag: the default agent links no key service SDK,
// the one built with the sopskms tag links sops' four key sources.
func TestAgentLinksKeyServicesOnlyWithTag(t *testing.T) {
	if testing.Short() {
		t.Skip("lists the agent's dependencies with the go command")
	}
	services := []string{"github.com/getsops/sops/v3/hcvault", "github.com/getsops/sops/v3/kms",
		"github.com/getsops/sops/v3/gcpkms", "github.com/getsops/sops/v3/azkv"}
	deps := func(tags string) map[string]bool {
		args := []string{"list", "-deps"}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.Command("go", append(args, "github.com/flotilla-dev/flotilla/spoke/cmd/flotilla-agent")...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		m := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			m[p] = true
		}
		return m
	}
	def, kms := deps(""), deps(KMSBuildTag)
	for _, p := range services {
		if def[p] {
			t.Errorf("the default agent links %s", p)
		}
		if !kms[p] {
			t.Errorf("the agent built with -tags %s does not link %s", KMSBuildTag, p)
		}
	}
	for p := range def {
		if strings.HasPrefix(p, "github.com/aws/") || strings.HasPrefix(p, "github.com/Azure/") || strings.HasPrefix(p, "cloud.google.com/") || strings.HasPrefix(p, "github.com/hashicorp/vault/") {
			t.Errorf("the default agent links %s", p)
		}
	}
}
