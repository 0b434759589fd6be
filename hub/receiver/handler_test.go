package receiver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

const testToken = "webhook-token"

// fixture is a handler over a fake API with one GitHub Receiver in ns "team",
// naming GitRepository app, and a GitRepository in another namespace.
func fixture(t *testing.T, edit func(*notificationv1.Receiver)) (*Handler, client.Client, *notificationv1.Receiver) {
	t.Helper()
	rcv := &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "push"},
		Spec: notificationv1.ReceiverSpec{Type: notificationv1.GitHubReceiver, Events: []string{"push"},
			SecretRef: meta.LocalObjectReference{Name: "hook"},
			Resources: []notificationv1.ReceiverResource{{Kind: sourcev1.GitRepositoryKind, Name: "app"}}}}
	if edit != nil {
		edit(rcv)
	}
	rcv.Status.WebhookPath = WebhookPath(testToken, rcv.Name, rcv.Namespace)
	c := fake.NewClientBuilder().WithScheme(api.NewScheme()).
		WithIndex(&notificationv1.Receiver{}, PathIndex, func(o client.Object) []string {
			return []string{o.(*notificationv1.Receiver).Status.WebhookPath}
		}).
		WithObjects(rcv,
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "hook"}, Data: map[string][]byte{"token": []byte(testToken + "\n")}},
			&sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app", Labels: map[string]string{"hook": "yes"}}},
			&sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "lib"}},
			&sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "app"}},
		).Build()
	h := &Handler{Cache: c, Live: c, Writer: c, Log: logr.Discard(),
		Now: func() time.Time { return time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC) }}
	return h, c, rcv
}

func call(h http.Handler, path string, body []byte, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// requested is the reconcile-requested-at value of GitRepository ns/name.
func requested(t *testing.T, c client.Client, ns, name string) string {
	t.Helper()
	var r sourcev1.GitRepository
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &r); err != nil {
		t.Fatal(err)
	}
	return r.Annotations[meta.ReconcileRequestedAtAnnotation]
}

func TestHandlerGitHubPush(t *testing.T) {
	h, c, rcv := fixture(t, nil)
	body := []byte(`{"ref":"refs/heads/main"}`)
	path := rcv.Status.WebhookPath

	before := Requests(ResultInvalidSignature)
	for _, bad := range []struct {
		code   int
		header []string
	}{
		{http.StatusUnauthorized, []string{"X-GitHub-Event", "push"}},
		{http.StatusForbidden, []string{"X-GitHub-Event", "push", "X-Hub-Signature-256", Sign("sha256", "guess", body)}},
	} {
		if w := call(h, path, body, bad.header...); w.Code != bad.code {
			t.Errorf("bad signature %v: %d %s, want %d", bad.header, w.Code, w.Body, bad.code)
		}
	}
	if got := Requests(ResultInvalidSignature) - before; got != 2 {
		t.Errorf("%s counted %v times, want 2", ResultInvalidSignature, got)
	}
	if v := requested(t, c, "team", "app"); v != "" {
		t.Fatalf("a bad signature annotated the repository: %q", v)
	}

	sig := Sign("sha256", testToken, body)
	if w := call(h, path, body, "X-GitHub-Event", "ping", "X-Hub-Signature-256", sig); w.Code != http.StatusOK || requested(t, c, "team", "app") != "" {
		t.Errorf("ping: %d %s, annotation %q; want 200 and nothing done", w.Code, w.Body, requested(t, c, "team", "app"))
	}
	if w := call(h, path, body, "X-GitHub-Event", "release", "X-Hub-Signature-256", sig); w.Code != http.StatusOK || requested(t, c, "team", "app") != "" {
		t.Errorf("an event not listed: %d %s; want 200 and nothing done", w.Code, w.Body)
	}
	before = Requests(ResultAccepted)
	if w := call(h, path, body, "X-GitHub-Event", "push", "X-Hub-Signature-256", sig); w.Code != http.StatusOK {
		t.Fatalf("valid push: %d %s", w.Code, w.Body)
	}
	if v := requested(t, c, "team", "app"); v != "2026-11-30T20:00:00Z" {
		t.Errorf("reconcile-requested-at is %q after a valid push", v)
	}
	if v := requested(t, c, "team", "lib"); v != "" {
		t.Errorf("a repository the Receiver does not name was annotated: %q", v)
	}
	if v := requested(t, c, "other", "app"); v != "" {
		t.Errorf("another namespace's repository was annotated: %q", v)
	}
	if got := Requests(ResultAccepted) - before; got != 1 {
		t.Errorf("%s counted %v times, want 1", ResultAccepted, got)
	}
}

func TestHandlerRefusals(t *testing.T) {
	body := []byte(`{}`)
	sig := Sign("sha256", testToken, body)
	tests := []struct {
		name   string
		edit   func(*notificationv1.Receiver)
		path   func(rcv *notificationv1.Receiver) string
		method string
		body   []byte
		code   int
		result string
	}{
		{name: "unknown path", path: func(*notificationv1.Receiver) string { return WebhookPath("guess", "push", "team") },
			code: http.StatusNotFound, result: ResultNotFound},
		{name: "not a hook path", path: func(*notificationv1.Receiver) string { return "/hook/../register" },
			code: http.StatusNotFound, result: ResultNotFound},
		{name: "GET", method: http.MethodGet, code: http.StatusMethodNotAllowed, result: ResultBadRequest},
		{name: "suspended", edit: func(r *notificationv1.Receiver) { r.Spec.Suspend = true },
			code: http.StatusServiceUnavailable, result: ResultSuspended},
		{name: "another namespace", edit: func(r *notificationv1.Receiver) { r.Spec.Resources[0].Namespace = "other" },
			code: http.StatusForbidden, result: ResultRefused},
		{name: "body too large", body: bytes.Repeat([]byte("x"), DefaultMaxBody+1),
			code: http.StatusRequestEntityTooLarge, result: ResultTooLarge},
		{name: "missing resource", edit: func(r *notificationv1.Receiver) { r.Spec.Resources[0].Name = "gone" },
			code: http.StatusInternalServerError, result: ResultError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, c, rcv := fixture(t, tt.edit)
			path := rcv.Status.WebhookPath
			if tt.path != nil {
				path = tt.path(rcv)
			}
			b := body
			if tt.body != nil {
				b = tt.body
			}
			before := Requests(tt.result)
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
			if tt.method != "" {
				req.Method = tt.method
			}
			req.URL.Path = path
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-Hub-Signature-256", sig)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.code {
				t.Errorf("%d %s, want %d", w.Code, strings.TrimSpace(w.Body.String()), tt.code)
			}
			if got := Requests(tt.result) - before; got != 1 {
				t.Errorf("%s counted %v times, want 1", tt.result, got)
			}
			for _, ns := range []string{"team", "other"} {
				if v := requested(t, c, ns, "app"); v != "" {
					t.Errorf("%s/app annotated: %q", ns, v)
				}
			}
		})
	}
}

func TestHandlerRateLimit(t *testing.T) {
	h, _, rcv := fixture(t, nil)
	h.ReceiverRate, h.ReceiverBurst = 0.001, 2
	h.Rate, h.Burst = 0.001, 3
	body := []byte(`{}`)
	sig := Sign("sha256", testToken, body)
	// Made-up paths are turned away before any limit: they cannot crowd the real
	// caller out.
	for i := range 50 {
		if w := call(h, WebhookPath(fmt.Sprint(i), "x", "y"), body); w.Code != http.StatusNotFound {
			t.Fatalf("made-up path: %d, want 404", w.Code)
		}
	}
	var codes []int
	for range 4 {
		codes = append(codes, call(h, rcv.Status.WebhookPath, body, "X-GitHub-Event", "push", "X-Hub-Signature-256", sig).Code)
	}
	if codes[0] != http.StatusOK || codes[1] != http.StatusOK || codes[2] != http.StatusTooManyRequests || codes[3] != http.StatusTooManyRequests {
		t.Errorf("codes %v, want two accepted then 429", codes)
	}
	// The replica-wide limit: one token of 3 left after the two calls above went
	// through; another Receiver's path gets it, then 429.
	h2 := &Handler{Cache: h.Cache, Live: h.Live, Writer: h.Writer, Log: h.Log, Now: h.Now}
	h2.init()
	h2.all, h2.perPath = h.all, map[string]*rate.Limiter{}
	codes = codes[:0]
	for range 2 {
		codes = append(codes, call(h2, rcv.Status.WebhookPath, body, "X-GitHub-Event", "push", "X-Hub-Signature-256", sig).Code)
	}
	if codes[0] != http.StatusOK || codes[1] != http.StatusTooManyRequests {
		t.Errorf("codes %v under the shared limit, want 200 then 429", codes)
	}
}

func TestHandlerMatchLabels(t *testing.T) {
	h, c, rcv := fixture(t, func(r *notificationv1.Receiver) {
		r.Spec.Type = notificationv1.GenericReceiver
		r.Spec.Resources = []notificationv1.ReceiverResource{{Kind: sourcev1.GitRepositoryKind, Name: "*", MatchLabels: map[string]string{"hook": "yes"}}}
	})
	if w := call(h, rcv.Status.WebhookPath, nil); w.Code != http.StatusOK {
		t.Fatalf("generic call: %d %s", w.Code, w.Body)
	}
	if requested(t, c, "team", "app") == "" || requested(t, c, "team", "lib") != "" || requested(t, c, "other", "app") != "" {
		t.Errorf("annotated app=%q lib=%q other/app=%q; want only the labelled one in the Receiver's namespace",
			requested(t, c, "team", "app"), requested(t, c, "team", "lib"), requested(t, c, "other", "app"))
	}
}

func TestHandlerRotatedToken(t *testing.T) {
	h, c, rcv := fixture(t, nil)
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: "hook"}, s); err != nil {
		t.Fatal(err)
	}
	s.Data["token"] = []byte("new-token")
	if err := c.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{}`)
	// Signed with the new token, at the old path that status still shows.
	w := call(h, rcv.Status.WebhookPath, body, "X-GitHub-Event", "push", "X-Hub-Signature-256", Sign("sha256", "new-token", body))
	if w.Code != http.StatusNotFound || requested(t, c, "team", "app") != "" {
		t.Errorf("old path after a token change: %d %s, want 404 and nothing done", w.Code, w.Body)
	}
}
