package env

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MetricsReaderRole is the ClusterRole that may scrape Flotilla's metrics, as
// deploy/hub and deploy/agent install it.
const MetricsReaderRole = "flotilla-metrics-reader"

// FreeAddr is a loopback address with a port free a moment ago, for servers that do
// not report the port they bound (controller-runtime's metrics server).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// MetricsToken is a token of a new ServiceAccount (namespace default) of the API
// server c reaches; with reader, it is bound to MetricsReaderRole (made when missing).
func MetricsToken(t testing.TB, c client.Client, reader bool) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: Unique("scraper")}}
	if err := c.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	if reader {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: MetricsReaderRole},
			Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
		if err := c.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if err := c.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: sa.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: MetricsReaderRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// Sample is one sample of a scrape.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples are a scrape's samples.
type Samples []Sample

// Get returns the samples named name whose labels include the given pairs
// ("key", "value", …).
func (s Samples) Get(name string, labels ...string) Samples {
	var out Samples
next:
	for _, x := range s {
		if x.Name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if x.Labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		out = append(out, x)
	}
	return out
}

// Sum is the sum of the samples' values.
func (s Samples) Sum() float64 {
	var v float64
	for _, x := range s {
		v += x.Value
	}
	return v
}

// Scrape gets url (HTTPS without verifying the server's self-signed certificate,
// or HTTP) with token as bearer when set, and parses Prometheus's text format. It
// returns the HTTP status; samples only for 200.
func Scrape(url, token string) (Samples, int, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the metrics server's certificate is self-signed
	}}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "text/plain")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, nil
	}
	var out Samples
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, resp.StatusCode, fmt.Errorf("%q: %w", line, err)
		}
		out = append(out, s)
	}
	return out, resp.StatusCode, sc.Err()
}

func parseSample(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.Name, line = line[:i], line[i:]
	if strings.HasPrefix(line, "{") {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, ", ")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.Index(line, "=\"")
			if eq < 0 {
				return s, fmt.Errorf("bad labels")
			}
			key := line[:eq]
			line = line[eq+2:]
			var val strings.Builder
			for j := 0; ; j++ {
				if j >= len(line) {
					return s, fmt.Errorf("unterminated label value")
				}
				if line[j] == '\\' && j+1 < len(line) {
					j++
					c := line[j]
					if c == 'n' {
						c = '\n'
					}
					val.WriteByte(c)
					continue
				}
				if line[j] == '"' {
					line = line[j+1:]
					break
				}
				val.WriteByte(line[j])
			}
			s.Labels[key] = val.String()
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	s.Value = v
	return s, err
}
