package bootstrap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/registration"
)

// Options configures registration on a spoke.
type Options struct {
	// Spoke reads the bootstrap Secret and keeps the credential Secret.
	Spoke client.Client
	// Namespace of both Secrets; registration.SpokeNamespace when empty.
	Namespace string
	// HTTPClient posts the registration; one trusting the bootstrap Secret's
	// registration CA (or the system roots) when nil.
	HTTPClient *http.Client
	Log        logr.Logger
}

// Credential is an agent's hub credential, as the hub issued it.
type Credential struct {
	Cluster     string
	Namespace   string
	Server      string
	CAData      []byte
	Token       string
	TrustedKeys []byte
	// ArtifactCA verifies the hub's artifact server.
	ArtifactCA []byte
	// ArtifactURL is the hub artifact server's base URL.
	ArtifactURL string
	Expiration  time.Time
}

// RESTConfig reaches the hub with the credential.
func (c *Credential) RESTConfig() *rest.Config {
	return &rest.Config{Host: c.Server, BearerToken: c.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData}}
}

// ErrRefused says the hub refused the bootstrap token: used, expired, or replaced.
// Only a new token (`flotilla cluster rotate`) helps.
var ErrRefused = errors.New("the hub refused the bootstrap token")

func (o *Options) complete() {
	if o.Namespace == "" {
		o.Namespace = registration.SpokeNamespace
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
}

// Obtain returns the stored credential, or registers with the bootstrap token and
// stores the credential it gets.
func Obtain(ctx context.Context, opts Options) (*Credential, error) {
	opts.complete()
	cred, err := Load(ctx, opts)
	if err == nil {
		return cred, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	return Register(ctx, opts)
}

// Load reads the stored credential; a NotFound error when there is none.
func Load(ctx context.Context, opts Options) (*Credential, error) {
	opts.complete()
	var s corev1.Secret
	if err := opts.Spoke.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: registration.CredentialSecretName}, &s); err != nil {
		return nil, err
	}
	d := s.Data
	cred := &Credential{
		Cluster:     string(d[registration.CredentialKeyCluster]),
		Namespace:   string(d[registration.CredentialKeyNamespace]),
		Server:      string(d[registration.CredentialKeyServer]),
		CAData:      d[registration.CredentialKeyCA],
		Token:       string(d[registration.CredentialKeyToken]),
		TrustedKeys: d[registration.CredentialKeyTrustedKeys],
		ArtifactCA:  d[registration.CredentialKeyArtifactCA],
		ArtifactURL: string(d[registration.CredentialKeyArtifactURL]),
	}
	cred.Expiration, _ = time.Parse(time.RFC3339, string(d[registration.CredentialKeyExpiration]))
	if cred.Cluster == "" || cred.Server == "" || cred.Token == "" {
		return nil, fmt.Errorf("credential Secret %s/%s is incomplete", opts.Namespace, registration.CredentialSecretName)
	}
	return cred, nil
}

// Register trades the bootstrap token for a credential and stores it. A hub that is
// not ready yet (503) is asked again until ctx ends.
func Register(ctx context.Context, opts Options) (*Credential, error) {
	opts.complete()
	var bs corev1.Secret
	if err := opts.Spoke.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: registration.BootstrapSecretName}, &bs); err != nil {
		return nil, fmt.Errorf("bootstrap Secret %s/%s: %w", opts.Namespace, registration.BootstrapSecretName, err)
	}
	d := bs.Data
	req := registration.Request{Cluster: string(d[registration.BootstrapKeyCluster]), Token: string(d[registration.BootstrapKeyToken])}
	url := string(d[registration.BootstrapKeyRegistrationURL])
	if req.Cluster == "" || req.Token == "" || url == "" {
		return nil, fmt.Errorf("bootstrap Secret %s/%s lacks cluster, token or registrationURL", opts.Namespace, registration.BootstrapSecretName)
	}
	hc := opts.HTTPClient
	if hc == nil {
		var err error
		if hc, err = httpClient(d[registration.BootstrapKeyRegistrationCA]); err != nil {
			return nil, err
		}
	}
	log := opts.Log.WithValues("cluster", req.Cluster, "url", url)
	var resp *registration.Response
	for wait := time.Second; ; wait = min(2*wait, 15*time.Second) {
		var retry bool
		var err error
		resp, retry, err = post(ctx, hc, url, req)
		if err == nil {
			break
		}
		if !retry {
			return nil, err
		}
		log.Info("registration not possible yet, retrying", "reason", err.Error(), "in", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
	cred := &Credential{
		Cluster:     resp.Cluster,
		Namespace:   resp.Namespace,
		Server:      resp.Server,
		CAData:      resp.CAData,
		Token:       resp.Token,
		TrustedKeys: []byte(resp.TrustedKeys),
		ArtifactCA:  []byte(resp.ArtifactCA),
		ArtifactURL: resp.ArtifactURL,
	}
	if cred.ArtifactURL == "" {
		// A hub that does not say: the registration endpoint is on the artifact server.
		cred.ArtifactURL = artifactBase(url)
	}
	if len(cred.ArtifactCA) == 0 {
		// The registration endpoint is on the artifact server: the same CA verifies both.
		cred.ArtifactCA = d[registration.BootstrapKeyRegistrationCA]
	}
	cred.Expiration, _ = time.Parse(time.RFC3339, resp.ExpirationTimestamp)
	if cred.Server == "" {
		// A hub that does not know its public address: the one the token came with.
		cred.Server, cred.CAData = string(d[registration.BootstrapKeyHubServer]), d[registration.BootstrapKeyHubCA]
	}
	if err := store(ctx, opts, cred); err != nil {
		return nil, fmt.Errorf("store the hub credential: %w", err)
	}
	log.Info("registered with the hub", "namespace", cred.Namespace, "expires", resp.ExpirationTimestamp)
	return cred, nil
}

// post sends one registration; retry says whether asking again may help.
func post(ctx context.Context, hc *http.Client, url string, req registration.Request) (*registration.Response, bool, error) {
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := hc.Do(hreq)
	if err != nil {
		return nil, true, err // the hub may not be reachable yet
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if err != nil {
		return nil, true, err
	}
	if hresp.StatusCode != http.StatusOK {
		var e registration.Error
		_ = json.Unmarshal(data, &e)
		err := fmt.Errorf("registration: %s: %s", hresp.Status, e.Message)
		switch hresp.StatusCode {
		case http.StatusUnauthorized:
			return nil, false, fmt.Errorf("%w: %s", ErrRefused, e.Message)
		case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusNotFound, http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
			// 404: the Cluster may be created just after the token (Cluster API).
			return nil, true, err
		}
		return nil, false, err
	}
	var resp registration.Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, false, fmt.Errorf("registration answer: %w", err)
	}
	if resp.Token == "" || resp.Cluster != req.Cluster {
		return nil, false, fmt.Errorf("registration answer lacks a token or is for another cluster (%q)", resp.Cluster)
	}
	return &resp, false, nil
}

func httpClient(caPEM []byte) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("registration CA in the bootstrap Secret is not PEM")
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t, Timeout: 30 * time.Second}, nil
}

func store(ctx context.Context, opts Options, cred *Credential) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: registration.CredentialSecretName}}
	data := map[string][]byte{
		registration.CredentialKeyCluster:     []byte(cred.Cluster),
		registration.CredentialKeyNamespace:   []byte(cred.Namespace),
		registration.CredentialKeyServer:      []byte(cred.Server),
		registration.CredentialKeyCA:          cred.CAData,
		registration.CredentialKeyToken:       []byte(cred.Token),
		registration.CredentialKeyTrustedKeys: cred.TrustedKeys,
	}
	if len(cred.ArtifactCA) > 0 {
		data[registration.CredentialKeyArtifactCA] = cred.ArtifactCA
	}
	if cred.ArtifactURL != "" {
		data[registration.CredentialKeyArtifactURL] = []byte(cred.ArtifactURL)
	}
	if !cred.Expiration.IsZero() {
		data[registration.CredentialKeyExpiration] = []byte(cred.Expiration.UTC().Format(time.RFC3339))
	}
	err := opts.Spoke.Get(ctx, client.ObjectKeyFromObject(s), s)
	if apierrors.IsNotFound(err) {
		s.Data = data
		s.Labels = map[string]string{"app.kubernetes.io/name": "flotilla-agent", "app.kubernetes.io/part-of": "flotilla"}
		return opts.Spoke.Create(ctx, s)
	}
	if err != nil {
		return err
	}
	s.Data = data
	return opts.Spoke.Update(ctx, s)
}

// Forget deletes the stored credential if it is still cred, so that the next start
// registers again; a newer credential stored meanwhile is kept.
func Forget(ctx context.Context, opts Options, cred *Credential) error {
	opts.complete()
	var s corev1.Secret
	err := opts.Spoke.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: registration.CredentialSecretName}, &s)
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	if string(s.Data[registration.CredentialKeyToken]) != cred.Token {
		return nil
	}
	return client.IgnoreNotFound(opts.Spoke.Delete(ctx, &s, client.Preconditions{UID: &s.UID, ResourceVersion: &s.ResourceVersion}))
}

// artifactBase is the scheme and host of the registration URL: the artifact server
// serves both.
func artifactBase(registrationURL string) string {
	u, err := neturl.Parse(registrationURL)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
