package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/hub/receiver"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// hookClient calls the hub's receivers, which the shared fleet serves on its artifact
// server (HTTPS with the hub's own CA).
func hookClient(t *testing.T, caPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the hub's CA does not parse")
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// githubPush posts body to url as GitHub does for a push, with signature (the value
// of X-Hub-Signature-256, none when empty), and returns the status code.
func githubPush(t *testing.T, c *http.Client, url string, body []byte, signature string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	t.Logf("%s → %d %s", signature, resp.StatusCode, strings.TrimSpace(string(msg)))
	return resp.StatusCode
}

// TestReceiverGitHubPush: a GitHub-style push with a valid HMAC signature to a
// Receiver's URL makes a GitRepository whose interval is an hour fetch the new
// commit at once, and the commit reaches both spokes; calls with no signature or a
// wrong one are refused, counted and recorded, and change nothing.
func TestReceiverGitHubPush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "receiver")
	hub := fleet.HubClient()
	s1, s2 := spokeTarget(fleet, "spoke-1", appNS), spokeTarget(fleet, "spoke-2", appNS)

	git := gitserver.New(t)
	repo := git.CreateRepo("hooked")
	files := func(value string) map[string]string {
		return map[string]string{
			"deploy/kustomization.yaml": kustomization("ns.yaml", "cm.yaml"),
			"deploy/ns.yaml":            namespace(appNS),
			"deploy/cm.yaml":            configMap(appNS, "hooked", value),
		}
	}
	rev1 := repo.Write(files("one"))
	src := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour}}}
	ks := &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: deliveryv1.KustomizationSpec{SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path: "./deploy", Prune: true, Interval: metav1.Duration{Duration: time.Hour}, Placement: byName("spoke-1", "spoke-2")}}
	const token = "a-webhook-secret"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github-hook"},
		StringData: map[string]string{notificationv1.TokenKey: token}}
	rcv := &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github"},
		Spec: notificationv1.ReceiverSpec{Type: notificationv1.GitHubReceiver, Events: []string{"push"},
			SecretRef: meta.LocalObjectReference{Name: secret.Name},
			Resources: []notificationv1.ReceiverResource{{Kind: sourcev1.GitRepositoryKind, Name: "app"}}}}
	for _, o := range []client.Object{src, ks, secret, rcv} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	s1.wantValue(t, "hooked", "one")
	s2.wantValue(t, "hooked", "one")
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, rev1)

	env.WaitReady(t, hub, rcv)
	wantPath := receiver.WebhookPath(token, rcv.Name, rcv.Namespace)
	if rcv.Status.WebhookPath != wantPath || rcv.Status.URL != fleet.HubInstance().ArtifactBaseURL()+wantPath {
		t.Fatalf("status path %q url %q, want %q on the artifact server", rcv.Status.WebhookPath, rcv.Status.URL, wantPath)
	}
	hc := hookClient(t, fleet.HubInstance().ArtifactCA())

	rev2 := repo.Write(files("two"))
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"full_name":"example/hooked"}}`, rev2))

	t.Run("an invalid signature changes nothing", func(t *testing.T) {
		before := receiver.Requests(receiver.ResultInvalidSignature)
		if code := githubPush(t, hc, rcv.Status.URL, body, ""); code != http.StatusUnauthorized {
			t.Errorf("unsigned push: %d, want 401", code)
		}
		if code := githubPush(t, hc, rcv.Status.URL, body, receiver.Sign("sha256", "not-the-token", body)); code != http.StatusForbidden {
			t.Errorf("push signed with another token: %d, want 403", code)
		}
		tampered := bytes.Replace(body, []byte("main"), []byte("evil"), 1)
		if code := githubPush(t, hc, rcv.Status.URL, tampered, receiver.Sign("sha256", token, body)); code != http.StatusForbidden {
			t.Errorf("push with a body other than the signed one: %d, want 403", code)
		}
		// The handler annotates before it answers: no annotation now means none.
		if err := hub.Get(ctx, client.ObjectKeyFromObject(src), src); err != nil {
			t.Fatal(err)
		}
		if v, ok := src.Annotations[meta.ReconcileRequestedAtAnnotation]; ok {
			t.Errorf("the GitRepository was asked to reconcile (%q) by a refused call", v)
		}
		if src.Status.Artifact == nil || !strings.HasSuffix(src.Status.Artifact.Revision, rev1) {
			t.Errorf("artifact %+v, want still %s", src.Status.Artifact, rev1)
		}
		if got := receiver.Requests(receiver.ResultInvalidSignature) - before; got < 3 {
			t.Errorf("%s counted %v more times, want 3", receiver.ResultInvalidSignature, got)
		}
		env.Eventually(t, "a Warning Event InvalidSignature on the Receiver", func() error {
			var list eventsv1.EventList
			if err := hub.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, e := range list.Items {
				if e.Regarding.Name == rcv.Name && e.Regarding.Kind == notificationv1.ReceiverKind && e.Reason == notificationv1.InvalidSignatureReason &&
					e.Type == corev1.EventTypeWarning {
					return nil
				}
			}
			return fmt.Errorf("none among %d Events", len(list.Items))
		})
	})

	t.Run("a signed push fetches at once and reaches both spokes", func(t *testing.T) {
		start := time.Now()
		if code := githubPush(t, hc, rcv.Status.URL, body, receiver.Sign("sha256", token, body)); code != http.StatusOK {
			t.Fatalf("signed push: %d, want 200", code)
		}
		env.WaitFor(t, hub, src, func(r *sourcev1.GitRepository) error {
			if r.Status.Artifact == nil || !strings.HasSuffix(r.Status.Artifact.Revision, "sha1:"+rev2) {
				return fmt.Errorf("artifact %+v, want commit %s", r.Status.Artifact, rev2)
			}
			return nil
		})
		fetched := time.Since(start)
		s1.wantValue(t, "hooked", "two")
		s2.wantValue(t, "hooked", "two")
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, rev2)
		took := time.Since(start)
		t.Logf("push → fetched in %s, → Ready on both spokes in %s (source interval 1h)", fetched.Round(time.Millisecond), took.Round(time.Millisecond))
		if took > 2*time.Minute {
			t.Errorf("the commit took %s to reach the spokes", took)
		}
	})

	t.Run("the API server refuses malformed Receivers and takes the example", func(t *testing.T) {
		for name, edit := range map[string]func(*notificationv1.ReceiverSpec){
			"unknown type":              func(s *notificationv1.ReceiverSpec) { s.Type = "svn" },
			"a kind the hub cannot ask": func(s *notificationv1.ReceiverSpec) { s.Resources[0].Kind = "Secret" },
			"matchLabels with a name":   func(s *notificationv1.ReceiverSpec) { s.Resources[0].MatchLabels = map[string]string{"a": "b"} },
			"no resources":              func(s *notificationv1.ReceiverSpec) { s.Resources = nil },
		} {
			bad := &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: *rcv.Spec.DeepCopy()}
			edit(&bad.Spec)
			if err := hub.Create(ctx, bad, client.DryRunAll); !apierrors.IsInvalid(err) {
				t.Errorf("%s: %v, want Invalid", name, err)
			}
		}
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "receiver-github.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		n := 0
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			u.SetNamespace(ns)
			if err := hub.Create(ctx, &u, client.DryRunAll); err != nil {
				t.Errorf("example %s %s: %v", u.GetKind(), u.GetName(), err)
			}
			n++
		}
		if n != 3 {
			t.Errorf("the example has %d objects, want 3", n)
		}
	})
}

// TestReceiverOwnListener: with --receiver-addr the hub serves receivers alone on a
// plain-HTTP listener of their own (for an Ingress that terminates TLS), status.url
// names it, and the artifact server no longer serves /hook/. On the same hub: a new
// token moves the path at once, and a Receiver without its Secret has no path until
// the Secret comes.
func TestReceiverOwnListener(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), env.Log().WithName("hub")))
	cp := env.StartControlPlane(t, "receiver-hub", true)
	admin := cp.Client()
	h, err := manager.Start(ctx, manager.Options{Config: cp.Config(), StorageDir: t.TempDir(), ArtifactAddr: "127.0.0.1:0",
		ReceiverAddr: "127.0.0.1:0", HealthAddr: "0", GCInterval: -1, PlatformNamespaces: []string{"*"}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-h.Done() })

	const token = "generic-token"
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hook"}, StringData: map[string]string{notificationv1.TokenKey: token}},
		// Nothing to fetch from: the annotation is what the test looks for.
		&sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
			Spec: sourcev1.GitRepositorySpec{URL: "https://git.invalid/app.git", Interval: metav1.Duration{Duration: time.Hour}}},
		&notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ci"},
			Spec: notificationv1.ReceiverSpec{Type: notificationv1.GenericHMACReceiver, SecretRef: meta.LocalObjectReference{Name: "hook"},
				Resources: []notificationv1.ReceiverResource{{Kind: sourcev1.GitRepositoryKind, Name: "*"}}}},
	}
	for _, o := range objs {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	rcv := objs[2].(*notificationv1.Receiver)
	env.WaitReady(t, admin, rcv)
	if !strings.HasPrefix(rcv.Status.URL, "http://127.0.0.1:") || !strings.HasSuffix(rcv.Status.URL, rcv.Status.WebhookPath) ||
		strings.HasPrefix(rcv.Status.URL, h.ArtifactBaseURL()) {
		t.Fatalf("status.url %q, want the receiver listener's", rcv.Status.URL)
	}
	post := func(c *http.Client, url string, sig string) int {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"image":"v2"}`))
		req.Header.Set("X-Signature", sig)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sig := receiver.Sign("sha256", token, []byte(`{"image":"v2"}`))
	if code := post(hookClient(t, h.ArtifactCA()), h.ArtifactBaseURL()+rcv.Status.WebhookPath, sig); code != http.StatusNotFound {
		t.Errorf("the artifact server answers %d for /hook/, want 404", code)
	}
	plain := &http.Client{Timeout: 30 * time.Second}
	if code := post(plain, rcv.Status.URL, receiver.Sign("sha256", "wrong", []byte(`{"image":"v2"}`))); code != http.StatusForbidden {
		t.Errorf("a wrong signature on the receiver listener: %d, want 403", code)
	}
	if code := post(plain, rcv.Status.URL, sig); code != http.StatusOK {
		t.Fatalf("a signed call on the receiver listener: %d, want 200", code)
	}
	src := objs[1].(*sourcev1.GitRepository)
	if err := admin.Get(ctx, client.ObjectKeyFromObject(src), src); err != nil {
		t.Fatal(err)
	}
	if src.Annotations[meta.ReconcileRequestedAtAnnotation] == "" {
		t.Error("the GitRepository was not asked to reconcile")
	}

	t.Run("a new token moves the path at once", func(t *testing.T) {
		oldURL := rcv.Status.URL
		secret := objs[0].(*corev1.Secret)
		secret.StringData = map[string]string{notificationv1.TokenKey: "rotated"}
		if err := admin.Update(ctx, secret); err != nil {
			t.Fatal(err)
		}
		wantPath := receiver.WebhookPath("rotated", rcv.Name, rcv.Namespace)
		env.WaitFor(t, admin, rcv, func(r *notificationv1.Receiver) error {
			if r.Status.WebhookPath != wantPath {
				return fmt.Errorf("path %q, want %q", r.Status.WebhookPath, wantPath)
			}
			return nil
		})
		newSig := receiver.Sign("sha256", "rotated", []byte(`{"image":"v2"}`))
		if code := post(plain, oldURL, newSig); code != http.StatusNotFound {
			t.Errorf("the old path: %d, want 404", code)
		}
		if code := post(plain, rcv.Status.URL, sig); code != http.StatusForbidden {
			t.Errorf("the new path signed with the old token: %d, want 403", code)
		}
		if code := post(plain, rcv.Status.URL, newSig); code != http.StatusOK {
			t.Errorf("the new path signed with the new token: %d, want 200", code)
		}
	})

	t.Run("no path without a token, served once the Secret comes", func(t *testing.T) {
		late := &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "late"},
			Spec: notificationv1.ReceiverSpec{Type: notificationv1.GenericReceiver, SecretRef: meta.LocalObjectReference{Name: "late"},
				Resources: []notificationv1.ReceiverResource{{Kind: sourcev1.GitRepositoryKind, Name: "app"}}}}
		if err := admin.Create(ctx, late); err != nil {
			t.Fatal(err)
		}
		env.WaitFor(t, admin, late, func(r *notificationv1.Receiver) error {
			c := apimeta.FindStatusCondition(r.Status.Conditions, meta.ReadyCondition)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != notificationv1.TokenNotFoundReason || r.Status.WebhookPath != "" {
				return fmt.Errorf("Ready %+v, path %q; want False with %s and no path", c, r.Status.WebhookPath, notificationv1.TokenNotFoundReason)
			}
			return nil
		})
		if err := admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "late"},
			StringData: map[string]string{notificationv1.TokenKey: "late-token"}}); err != nil {
			t.Fatal(err)
		}
		// Taken up from the Secret watch, well before the 10m interval.
		env.WaitReady(t, admin, late)
		if late.Status.WebhookPath != receiver.WebhookPath("late-token", late.Name, late.Namespace) {
			t.Errorf("path %q", late.Status.WebhookPath)
		}
	})
}
