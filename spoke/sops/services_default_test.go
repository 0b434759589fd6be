//go:build !sopskms

package sops

import (
	"strings"
	"testing"

	"github.com/getsops/sops/v3/keys"
)

// TestKeyServicesNotLinked: the default agent cannot use Vault or cloud KMS keys and
// says which image can, without calling the service even when the Secret has its
// credentials.
func TestKeyServicesNotLinked(t *testing.T) {
	if KeyServicesLinked() {
		t.Fatal("key services linked into a build without the sopskms tag")
	}
	vault := newFakeTransit(t, "team-token")
	doc := encrypt(t, secretYAML, "", false, recipients{services: []keys.MasterKey{vault.vaultKey("apps")}})
	calls := vault.callCount()
	k := parseKeys(t, map[string]string{VaultTokenKey: "team-token"})
	if k.Empty() {
		t.Fatal("a Secret with only sops.vault-token counts as empty")
	}
	_, err := k.DecryptYAML(doc)
	for _, want := range []string{"HashiCorp Vault transit " + vault.srv.URL + "/v1/transit/keys/apps", "built without key services", KMSAgentImage, "-tags " + KMSBuildTag} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want one containing %q", err, want)
		}
	}
	if n := vault.callCount(); n != calls {
		t.Fatalf("the default agent called Vault (%d calls)", n-calls)
	}
}
