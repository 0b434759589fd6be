package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/fleetenv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	"github.com/flotilla-dev/flotilla/hub/manager"
	hubreg "github.com/flotilla-dev/flotilla/hub/registration"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/spoke/bootstrap"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// startTokenFleet starts a hub that guards its artifacts and spokes whose agents
// register with bootstrap tokens, as `flotilla cluster add --kubeconfig` installs them.
func startTokenFleet(t *testing.T, spokes int) *fleetenv.Fleet {
	t.Helper()
	fleet := fleetenv.StartFleet(t, spokes, fleetenv.WithoutAgents(), fleetenv.With(func(o *devenv.Options) {
		o.Hub = func(h *manager.Options) { h.AnonymousArtifacts = false }
	}))
	for _, name := range fleet.Spokes() {
		installAgent(t, fleet, name)
		runBootstrapAgent(t, fleet.Spoke(name))
	}
	for _, name := range fleet.Spokes() {
		env.WaitReady(t, fleet.HubClient(), &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	return fleet
}

// runBootstrapAgent runs what the installed agent Deployment runs (flotilla-agent
// --bootstrap), in this process with the spoke's own client, because test spokes
// have no kubelet to run the pod, until the test ends. It checks its credential
// every second, so that it registers again soon after a revocation.
func runBootstrapAgent(t *testing.T, spoke *controlplane.ControlPlane) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bootstrap.Run(ctx, bootstrap.RunOptions{
			Options: bootstrap.Options{Spoke: spoke.Client(), Log: env.Log().WithName("bootstrap")},
			Agent: agent.Options{
				SpokeConfig:       spoke.Config(),
				StateDir:          t.TempDir(),
				HeartbeatInterval: 2 * time.Second,
				Logger:            env.Log().WithName("agent"),
			},
			CheckInterval: time.Second,
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent of %s: %v", spoke.Name(), err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("agent of %s did not stop", spoke.Name())
		}
	})
}

// installAgent does what `flotilla cluster add NAME --kubeconfig` does.
func installAgent(t *testing.T, fleet *fleetenv.Fleet, name string) hubreg.InstallValues {
	t.Helper()
	ctx := context.Background()
	vals, err := hubreg.PrepareCluster(ctx, fleet.HubClient(), manager.DefaultSystemNamespace, name, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := hubreg.ApplyInstall(ctx, fleet.SpokeClient(name), vals); err != nil {
		t.Fatal(err)
	}
	return vals
}

// credential is the hub credential an agent stored on its spoke.
func credential(t *testing.T, fleet *fleetenv.Fleet, name string) *bootstrap.Credential {
	t.Helper()
	cred, err := bootstrap.Load(context.Background(), bootstrap.Options{Spoke: fleet.SpokeClient(name)})
	if err != nil {
		t.Fatalf("credential of %s: %v", name, err)
	}
	return cred
}

func credClient(t *testing.T, cred *bootstrap.Credential) client.Client {
	t.Helper()
	c, err := client.New(cred.RESTConfig(), client.Options{Scheme: api.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// artifactClient trusts only the hub artifact server's CA.
func artifactClient(t *testing.T, caPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("artifact server CA is not PEM: %q", caPEM)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func getArtifact(t *testing.T, ca []byte, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := artifactClient(t, ca).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func clusterAssignment(t *testing.T, hub client.Client, cluster, ks string) *fleetv1.Assignment {
	t.Helper()
	a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(cluster), Name: "ks.default." + ks}}
	env.WaitFor(t, hub, a, func(a *fleetv1.Assignment) error {
		if a.Spec.Artifact.Digest == "" {
			return errors.New("no artifact yet")
		}
		return nil
	})
	return a
}

// TestTokenRegistration: agents registered with bootstrap tokens receive their
// deployments; each credential reaches only its own cluster's namespace and
// artifacts; a revoked credential reaches nothing; rotation brings an agent back.
func TestTokenRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet := startTokenFleet(t, 3)
	hub := fleet.HubClient()
	ca := fleet.HubInstance().ArtifactCA()

	// The hub keeps no token in clear, and a used token is gone.
	var tokens corev1.SecretList
	if err := hub.List(ctx, &tokens, client.InNamespace(manager.DefaultSystemNamespace), client.HasLabels{hubreg.ClusterLabel}); err != nil {
		t.Fatal(err)
	}
	if len(tokens.Items) != 0 {
		t.Errorf("bootstrap tokens left after registration: %d", len(tokens.Items))
	}

	git := gitserver.New(t)
	repo := git.CreateRepo("reg")
	repo.Write(map[string]string{
		"all/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"all/ns.yaml":            namespace(appNS),
		"all/a.yaml":             configMap(appNS, "reg-all", "everyone"),
		"one/kustomization.yaml": kustomization("ns.yaml", "b.yaml"),
		"one/ns.yaml":            namespace(appNS),
		"one/b.yaml":             configMap(appNS, "reg-one", "only spoke-1"),
	})
	if err := hub.Create(ctx, &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reg"},
		Spec:       sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		t.Fatal(err)
	}
	for name, sel := range map[string]*metav1.LabelSelector{
		"reg-all": {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "name", Operator: metav1.LabelSelectorOpExists}}},
		"reg-one": {MatchLabels: map[string]string{"name": "spoke-1"}},
	} {
		path := "./all"
		if name == "reg-one" {
			path = "./one"
		}
		if err := hub.Create(ctx, &deliveryv1.Kustomization{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: deliveryv1.KustomizationSpec{
				SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "reg"},
				Path:      path, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
				Placement: deliveryv1.Placement{ClusterSelector: sel},
			},
		}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("token-registered clusters receive their deployments", func(t *testing.T) {
		for _, name := range fleet.Spokes() {
			spokeTarget(fleet, name, appNS).wantValue(t, "reg-all", "everyone")
		}
		spokeTarget(fleet, "spoke-1", appNS).wantValue(t, "reg-one", "only spoke-1")
	})

	cred1, cred2 := credential(t, fleet, "spoke-1"), credential(t, fleet, "spoke-2")

	t.Run("a credential reaches only its own namespace", func(t *testing.T) {
		c1 := credClient(t, cred1)
		var own fleetv1.AssignmentList
		if err := c1.List(ctx, &own, client.InNamespace(fleetv1.ClusterNamespace("spoke-1"))); err != nil {
			t.Fatalf("list own assignments: %v", err)
		}
		other := clusterAssignment(t, hub, "spoke-2", "reg-all")
		var list fleetv1.AssignmentList
		if err := c1.List(ctx, &list, client.InNamespace(other.Namespace)); !apierrors.IsForbidden(err) {
			t.Errorf("list another cluster's assignments: want Forbidden, got %v", err)
		}
		if err := c1.Get(ctx, client.ObjectKeyFromObject(other), &fleetv1.Assignment{}); !apierrors.IsForbidden(err) {
			t.Errorf("get another cluster's assignment: want Forbidden, got %v", err)
		}
		patch := []byte(`{"status":{"message":"written by spoke-1"}}`)
		if err := c1.Status().Patch(ctx, other.DeepCopy(), client.RawPatch("application/merge-patch+json", patch)); !apierrors.IsForbidden(err) {
			t.Errorf("patch another cluster's assignment status: want Forbidden, got %v", err)
		}
		if err := c1.List(ctx, &fleetv1.ClusterList{}); !apierrors.IsForbidden(err) {
			t.Errorf("list Clusters: want Forbidden, got %v", err)
		}
	})

	t.Run("the artifact server speaks only HTTPS, verified by the handed-out CA", func(t *testing.T) {
		base := fleet.HubInstance().ArtifactBaseURL()
		host, ok := strings.CutPrefix(base, "https://")
		if !ok {
			t.Fatalf("artifact base URL %s is not HTTPS", base)
		}
		host = strings.TrimSuffix(host, "/")
		// Plain HTTP gets no answer from the registration endpoint.
		resp, err := http.Post("http://"+host+registration.Path, "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP to the artifact server: got %d, want a failure", resp.StatusCode)
			}
		}
		// The served certificate verifies with the CA the hub hands out, and not without it.
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			t.Fatalf("artifact CA is not PEM: %q", ca)
		}
		conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("TLS with the hub's artifact CA: %v", err)
		}
		conn.Close()
		if conn, err := tls.Dial("tcp", host, &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
			conn.Close()
			t.Error("the artifact server's certificate verified without the hub's CA")
		}
		// Agents get the CA: in the hub info (for the bootstrap Secret) and with the credential.
		info, err := hubreg.ReadHubInfo(ctx, hub, manager.DefaultSystemNamespace)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(info.RegistrationCA, ca) || !strings.HasPrefix(info.RegistrationURL, "https://") {
			t.Errorf("hub info: registration URL %s, CA handed out: %v", info.RegistrationURL, bytes.Equal(info.RegistrationCA, ca))
		}
		if !bytes.Equal(cred1.ArtifactCA, ca) {
			t.Errorf("the stored credential of spoke-1 lacks the artifact CA")
		}
	})

	t.Run("artifacts only with the right credential", func(t *testing.T) {
		one := clusterAssignment(t, hub, "spoke-1", "reg-one")
		url := one.Spec.Artifact.URL
		if got := getArtifact(t, ca, url, ""); got != http.StatusUnauthorized {
			t.Errorf("no credential: got %d, want 401", got)
		}
		if got := getArtifact(t, ca, url, "not-a-token"); got != http.StatusUnauthorized {
			t.Errorf("bogus credential: got %d, want 401", got)
		}
		if got := getArtifact(t, ca, url, cred1.Token); got != http.StatusOK {
			t.Errorf("own credential: got %d, want 200", got)
		}
		if got := getArtifact(t, ca, url, cred2.Token); got != http.StatusForbidden {
			t.Errorf("another cluster's credential: got %d, want 403", got)
		}
		unassigned := url[:strings.LastIndex(url, "/")+1] + strings.Repeat("ab", 32) + ".tar.gz"
		if got := getArtifact(t, ca, unassigned, cred1.Token); got != http.StatusForbidden {
			t.Errorf("unassigned digest: got %d, want 403", got)
		}
	})

	t.Run("a bootstrap token works once", func(t *testing.T) {
		vals, err := hubreg.PrepareCluster(ctx, hub, manager.DefaultSystemNamespace, "spoke-2", nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(registration.Request{Cluster: "spoke-1", Token: vals.Token})
		if code := postRegister(t, vals.RegistrationCA, vals.RegistrationURL, body); code != http.StatusUnauthorized {
			t.Errorf("token of spoke-2 for spoke-1: got %d, want 401", code)
		}
		body, _ = json.Marshal(registration.Request{Cluster: "spoke-2", Token: vals.Token})
		if code := postRegister(t, vals.RegistrationCA, vals.RegistrationURL, body); code != http.StatusOK {
			t.Fatalf("first use: got %d, want 200", code)
		}
		if code := postRegister(t, vals.RegistrationCA, vals.RegistrationURL, body); code != http.StatusUnauthorized {
			t.Errorf("second use: got %d, want 401", code)
		}
		expired, expires, err := hubreg.IssueBootstrapToken(ctx, hub, manager.DefaultSystemNamespace, "spoke-2", time.Nanosecond)
		if err != nil {
			t.Fatal(err)
		}
		// The hub keeps the expiry in whole seconds, rounded down: it is past already,
		// or soon.
		env.Eventually(t, "the token's expiry "+expires.Format(time.RFC3339), func() error {
			if !time.Now().After(expires) {
				return errors.New("not yet")
			}
			return nil
		})
		body, _ = json.Marshal(registration.Request{Cluster: "spoke-2", Token: expired})
		if code := postRegister(t, vals.RegistrationCA, vals.RegistrationURL, body); code != http.StatusUnauthorized {
			t.Errorf("expired token: got %d, want 401", code)
		}
	})

	t.Run("a revoked credential reaches nothing; rotation brings the agent back", func(t *testing.T) {
		cred3 := credential(t, fleet, "spoke-3")
		c3 := credClient(t, cred3)
		url := clusterAssignment(t, hub, "spoke-3", "reg-all").Spec.Artifact.URL
		if err := hubreg.Revoke(ctx, hub, manager.DefaultSystemNamespace, "spoke-3"); err != nil {
			t.Fatal(err)
		}
		env.Eventually(t, "the revoked credential to be refused", func() error {
			err := c3.List(ctx, &fleetv1.AssignmentList{}, client.InNamespace(fleetv1.ClusterNamespace("spoke-3")))
			if !apierrors.IsUnauthorized(err) {
				return fmt.Errorf("list assignments: want Unauthorized, got %v", err)
			}
			if got := getArtifact(t, ca, url, cred3.Token); got != http.StatusUnauthorized {
				return fmt.Errorf("artifact: got %d, want 401", got)
			}
			return nil
		})

		// `flotilla cluster rotate spoke-3 --kubeconfig …`: a new token on the spoke;
		// the running agent notices the 401 and registers again with it.
		installAgent(t, fleet, "spoke-3")
		env.Eventually(t, "spoke-3 to hold a new credential", func() error {
			cred, err := bootstrap.Load(ctx, bootstrap.Options{Spoke: fleet.SpokeClient("spoke-3")})
			if err != nil {
				return err
			}
			if cred.Token == cred3.Token {
				return errors.New("still the revoked one")
			}
			return nil
		})
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "reg-all"}}
		if err := fleet.SpokeClient("spoke-3").Delete(ctx, cm); err != nil {
			t.Fatal(err)
		}
		// The agent re-applies on its resync or when the Assignment changes; ask for it.
		requestReconcile(t, hub, clusterAssignment(t, hub, "spoke-3", "reg-all"))
		spokeTarget(fleet, "spoke-3", appNS).wantValue(t, "reg-all", "everyone")
		env.WaitReady(t, hub, &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "spoke-3"}})
	})
}

func postRegister(t *testing.T, ca []byte, url string, body []byte) int {
	t.Helper()
	resp, err := artifactClient(t, ca).Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
