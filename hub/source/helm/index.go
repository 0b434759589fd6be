package helm

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/repo"
)

// Secret keys read from spec.secretRef.
const (
	keyUsername = "username"
	keyPassword = "password"
	keyCACert   = "ca.crt"
)

// IndexFile is the file name of a repository index, in the repository and in the artifact.
const IndexFile = "index.yaml"

// MaxIndexSize bounds a downloaded index; the largest public indexes are tens of MiB.
const MaxIndexSize = 64 << 20

var (
	errInvalidURL = errors.New("invalid URL")
	errAuth       = errors.New("the repository refused the credentials")
	errBadIndex   = errors.New("invalid repository index")
)

// credentials is what a request to the repository needs.
type credentials struct {
	Username, Password string
	CA                 []byte
}

// credentialsFrom reads the Secret's data (nil: no Secret).
func credentialsFrom(data map[string][]byte) (credentials, error) {
	var c credentials
	if data == nil {
		return c, nil
	}
	user, hasUser := data[keyUsername]
	pass, hasPass := data[keyPassword]
	ca, hasCA := data[keyCACert]
	switch {
	case hasUser != hasPass:
		return c, errors.New("secret needs both username and password")
	case !hasUser && !hasCA:
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return c, fmt.Errorf("secret has none of username and password, or ca.crt (keys: %s)", strings.Join(keys, ", "))
	}
	c.Username, c.Password, c.CA = string(user), string(pass), ca
	return c, nil
}

// client returns an HTTP client over base (http.DefaultTransport when nil) that
// trusts c.CA besides the system's roots.
func (c credentials) client(base http.RoundTripper) (*http.Client, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	if len(c.CA) > 0 {
		t, ok := base.(*http.Transport)
		if !ok {
			return nil, errors.New("ca.crt needs an *http.Transport")
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(c.CA) {
			return nil, fmt.Errorf("%s holds no PEM certificate", keyCACert)
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.RootCAs = pool
		base = t
	}
	return &http.Client{Transport: base}, nil
}

// get downloads u with the credentials, at most limit bytes.
func (c credentials) get(ctx context.Context, hc *http.Client, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: GET %s: %s", errAuth, redact(u), resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", redact(u), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redact(u), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: more than %d bytes", redact(u), limit)
	}
	return data, nil
}

// indexURL is <repository URL>/index.yaml.
func indexURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w %q: a default HelmRepository needs an http:// or https:// URL", errInvalidURL, raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + IndexFile
	return u.String(), nil
}

// parseIndex checks the index with Helm's own loader, which refuses a missing
// apiVersion and drops invalid entries as helm does.
func parseIndex(data []byte) (*repo.IndexFile, error) {
	// The loader reads files only.
	f, err := os.CreateTemp("", "flotilla-helm-index-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	idx, err := repo.LoadIndexFile(f.Name())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadIndex, err)
	}
	return idx, nil
}

// indexRevision is the revision of an index: the sha256 of its bytes.
func indexRevision(data []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(data))
}

// redact drops credentials from a URL so that it may appear in conditions and events.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
