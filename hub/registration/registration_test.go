package registration

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/flotilla-dev/flotilla/api/registration"
)

func TestTokenMatches(t *testing.T) {
	secret := func(hash, cluster string, expires time.Time) *corev1.Secret {
		return &corev1.Secret{Type: BootstrapTokenSecretType, Data: map[string][]byte{
			tokenKeyHash: []byte(hash), tokenKeyCluster: []byte(cluster), tokenKeyExpiration: []byte(expires.Format(time.RFC3339)),
		}}
	}
	later, earlier := time.Now().Add(time.Hour), time.Now().Add(-time.Second)
	good := secret(hashToken("tok"), "a", later)
	wrongType := secret(hashToken("tok"), "a", later)
	wrongType.Type = corev1.SecretTypeOpaque
	for name, tc := range map[string]struct {
		s    *corev1.Secret
		req  registration.Request
		want bool
	}{
		"match":         {good, registration.Request{Cluster: "a", Token: "tok"}, true},
		"wrong token":   {good, registration.Request{Cluster: "a", Token: "tok2"}, false},
		"other cluster": {good, registration.Request{Cluster: "b", Token: "tok"}, false},
		"expired":       {secret(hashToken("tok"), "a", earlier), registration.Request{Cluster: "a", Token: "tok"}, false},
		"no expiry":     {&corev1.Secret{Type: BootstrapTokenSecretType, Data: map[string][]byte{tokenKeyHash: []byte(hashToken("tok")), tokenKeyCluster: []byte("a")}}, registration.Request{Cluster: "a", Token: "tok"}, false},
		"wrong type":    {wrongType, registration.Request{Cluster: "a", Token: "tok"}, false},
		// The stored hash itself must not work as a token.
		"hash as token": {good, registration.Request{Cluster: "a", Token: hashToken("tok")}, false},
	} {
		if got := tokenMatches(tc.s, tc.req); got != tc.want {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

func TestInstallObjects(t *testing.T) {
	objs, err := InstallObjects(InstallValues{
		Cluster: "prod-1", Token: "s3cr3t", RegistrationURL: "https://hub:9090/register", HubServer: "https://hub:6443",
		HubCA: []byte("-----BEGIN CERTIFICATE-----\n"), Expires: time.Unix(0, 0), Image: "example.com/agent:v1",
	})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	want := "Namespace/flotilla-system ServiceAccount/flotilla-agent ClusterRole/flotilla-agent ClusterRoleBinding/flotilla-agent Secret/flotilla-agent-bootstrap ClusterRole/flotilla-metrics-reader Deployment/flotilla-agent Service/flotilla-agent-metrics"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("objects:\n got %s\nwant %s", got, want)
	}
	secret := objs[4].Object["data"].(map[string]any)
	if secret[registration.BootstrapKeyToken] != "czNjcjN0" || secret[registration.BootstrapKeyCluster] != "cHJvZC0x" {
		t.Errorf("bootstrap Secret data: %v", secret)
	}
	if _, ok := secret[registration.BootstrapKeyRegistrationCA]; ok {
		t.Errorf("registration CA set without one")
	}
	y, _ := RenderInstall(InstallValues{Cluster: "prod-1", Token: "t", RegistrationURL: "u", HubServer: "h", Image: `x": injected`})
	if !strings.Contains(string(y), `image: "x\": injected"`) {
		t.Errorf("image not quoted:\n%s", y)
	}
	if !strings.Contains(string(y), `verbs: ["impersonate"]`) {
		t.Errorf("no impersonate rule")
	}
	if _, err := RenderInstall(InstallValues{Cluster: "a"}); err == nil {
		t.Error("rendered without a token")
	}
}
