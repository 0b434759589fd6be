package helm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/repo"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

// IndexFile is the file name of a repository index, in the repository and in the artifact.
const IndexFile = "index.yaml"

// MaxIndexSize bounds a downloaded index; the largest public indexes are tens of MiB.
const MaxIndexSize = 64 << 20

var (
	errInvalidURL = errors.New("invalid URL")
	errBadIndex   = errors.New("invalid repository index")
)

// get downloads u over base (http.DefaultTransport when nil) with the credentials,
// at most limit bytes. A 401 or 403 is credentials.ErrRefused, transient with reason
// AuthenticationFailed; other failures are left to the caller's default.
func get(ctx context.Context, c credentials.Credentials, base http.RoundTripper, u string, limit int64) ([]byte, error) {
	rt, err := c.Transport(base)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if c.HasBasic() {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, outcome.Fail(outcome.Transient, sourcev1.AuthenticationFailedReason,
			fmt.Errorf("%w: GET %s: %s", credentials.ErrRefused, credentials.Redact(u), resp.Status))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", credentials.Redact(u), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", credentials.Redact(u), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: more than %d bytes", credentials.Redact(u), limit)
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
