package manager

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
)

func TestArtifactTLS(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(api.NewScheme()).Build()
	lis := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 9090}
	hosts := artifactHosts(lis, "https://hub.example.com:9090")
	cert, ca, err := artifactTLS(ctx, c, "flotilla-system", hosts)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("CA is not PEM")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"hub.example.com", "10.1.2.3", "localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "hub.example.com"}); err == nil {
		t.Error("verified without the CA")
	}

	// A restart reuses the Secret; a new address keeps the CA and renews the certificate.
	again, ca2, err := artifactTLS(ctx, c, "flotilla-system", hosts)
	if err != nil || !bytes.Equal(ca, ca2) || !bytes.Equal(again.Certificate[0], cert.Certificate[0]) {
		t.Fatalf("restart did not reuse the certificate (err %v)", err)
	}
	moved, ca3, err := artifactTLS(ctx, c, "flotilla-system", append(hosts, "other.example.com"))
	if err != nil || !bytes.Equal(ca, ca3) {
		t.Fatalf("new address changed the CA (err %v)", err)
	}
	leaf, _ = x509.ParseCertificate(moved.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.example.com"}); err != nil {
		t.Errorf("renewed certificate: %v", err)
	}
}
