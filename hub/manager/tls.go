package manager

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ArtifactTLSSecret (in the system namespace) holds the artifact server's self-signed
// CA and serving certificate, PEM, under "ca.crt", "ca.key", "tls.crt" and "tls.key";
// the hub creates it when missing and renews the serving certificate when its names
// no longer cover the artifact server's address.
const ArtifactTLSSecret = "flotilla-artifact-tls"

const (
	tlsKeyCA      = "ca.crt"
	tlsKeyCAKey   = "ca.key"
	tlsKeyCert    = "tls.crt"
	tlsKeyCertKey = "tls.key"
)

// artifactTLS loads or creates the artifact server's CA and serving certificate for
// hosts; it returns the serving certificate and the CA's PEM.
func artifactTLS(ctx context.Context, c client.Client, ns string, hosts []string) (tls.Certificate, []byte, error) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ArtifactTLSSecret}}
	err := c.Get(ctx, client.ObjectKeyFromObject(s), s)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return tls.Certificate{}, nil, err
	}
	if exists {
		if cert, ok := usableServing(s.Data, hosts); ok {
			return cert, s.Data[tlsKeyCA], nil
		}
	}
	caPEM, caKeyPEM := s.Data[tlsKeyCA], s.Data[tlsKeyCAKey]
	ca, caKey, err := parseCA(caPEM, caKeyPEM)
	if err != nil {
		if caPEM, caKeyPEM, ca, caKey, err = newCA(); err != nil {
			return tls.Certificate{}, nil, err
		}
	}
	certPEM, keyPEM, err := newServing(ca, caKey, hosts)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	s.Type = corev1.SecretTypeOpaque
	s.Data = map[string][]byte{tlsKeyCA: caPEM, tlsKeyCAKey: caKeyPEM, tlsKeyCert: certPEM, tlsKeyCertKey: keyPEM}
	if exists {
		err = c.Update(ctx, s)
	} else {
		err = c.Create(ctx, s)
	}
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("store %s/%s: %w", ns, ArtifactTLSSecret, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, caPEM, err
}

// usableServing says whether the stored serving certificate chains to the stored CA,
// is valid for another month and names every host.
func usableServing(d map[string][]byte, hosts []string) (tls.Certificate, bool) {
	cert, err := tls.X509KeyPair(d[tlsKeyCert], d[tlsKeyCertKey])
	if err != nil || len(d[tlsKeyCA]) == 0 {
		return tls.Certificate{}, false
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < 30*24*time.Hour {
		return tls.Certificate{}, false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(d[tlsKeyCA]) {
		return tls.Certificate{}, false
	}
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h}); err != nil {
			return tls.Certificate{}, false
		}
	}
	return cert, true
}

func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("no CA")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !ca.IsCA || time.Until(ca.NotAfter) < 60*24*time.Hour {
		return nil, nil, errors.New("CA unusable")
	}
	return ca, key, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA() (certPEM, keyPEM []byte, ca *x509.Certificate, key *ecdsa.PrivateKey, err error) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "flotilla artifact server CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if ca, err = x509.ParseCertificate(der); err != nil {
		return nil, nil, nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), ca, key, nil
}

func newServing(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "flotilla artifact server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// artifactHosts are the names the serving certificate covers: the listener's host
// (unless it is a wildcard), the base URL's host, localhost and 127.0.0.1.
func artifactHosts(lis net.Addr, baseURL string) []string {
	hosts := []string{"localhost", "127.0.0.1"}
	add := func(h string) {
		if h == "" || h == "::" || h == "0.0.0.0" || slices.Contains(hosts, h) {
			return
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			return
		}
		hosts = append(hosts, h)
	}
	if h, _, err := net.SplitHostPort(lis.String()); err == nil {
		add(h)
	}
	if u, err := url.Parse(baseURL); err == nil {
		add(u.Hostname())
	}
	return hosts
}
