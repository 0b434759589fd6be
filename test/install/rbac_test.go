package install

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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/flotilla-dev/flotilla/api"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	fregistration "github.com/flotilla-dev/flotilla/api/registration"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/hub/receiver"
	hubreg "github.com/flotilla-dev/flotilla/hub/registration"
	"github.com/flotilla-dev/flotilla/tenancy"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// AllRulesEnv runs TestEachRuleIsNeeded for every rule of the hub's RBAC (about two
// minutes: a hub start per rule, and a probe the missing rule breaks waits 15 to
// 20 s). By default it runs the install as it is and one rule removed.
const AllRulesEnv = "FLOTILLA_TEST_RBAC_RULES"

// A rule of the install, found by what it grants, and the feature its absence
// breaks: the probe of the hub that fails first.
type ruleCase struct {
	// role is "ClusterRole" or "Role" (the system namespace's).
	role string
	// group and resource pick the rule: the first whose APIGroups and Resources
	// hold them (and, when set, whose Verbs hold verb).
	group, resource, verb string
	// breaks is the probe that fails without the rule.
	breaks string
}

// Probes of a hub, in the order a cluster lives through them.
const (
	probeStart    = "the hub starts"
	probeAgent    = "the hub offers its --agent-image as the AgentRollout"
	probeCluster  = "a new Cluster gets its finalizer and hub namespace"
	probeTrust    = "the trust bundle is published in the cluster namespace"
	probeRegister = "an agent registers with a bootstrap token"
	probeBeat     = "the agent's heartbeat makes its Cluster Ready"
	probeDeliver  = "a Kustomization assigns a signed artifact to the cluster"
	probeEvents   = "the hub records Events on what it reconciles"
	probeDownload = "the agent downloads its artifact with its credential"
	probeMetrics  = "a metrics reader scrapes the hub's metrics"
	probeReceive  = "a signed call to a Receiver asks its source to reconcile"
)

var ruleCases = []ruleCase{
	{"ClusterRole", "fleet.flotilla.dev", "clusters", "list", probeStart},
	{"ClusterRole", "fleet.flotilla.dev", "clusters/status", "", probeCluster},
	{"ClusterRole", "fleet.flotilla.dev", "clusters", "update", probeCluster},
	{"ClusterRole", "fleet.flotilla.dev", "assignments", "create", probeDeliver},
	{"ClusterRole", "", "namespaces", "", probeStart},
	{"ClusterRole", "", "configmaps", "", probeStart},
	{"ClusterRole", "", "secrets", "", probeStart},
	// The Cluster controller waits for its Lease watch, which never syncs.
	{"ClusterRole", "coordination.k8s.io", "leases", "list", probeCluster},
	{"ClusterRole", "authentication.k8s.io", "tokenreviews", "", probeDownload},
	{"ClusterRole", "authorization.k8s.io", "subjectaccessreviews", "", probeMetrics},
	{"ClusterRole", "", "serviceaccounts", "", probeRegister},
	{"ClusterRole", "", "serviceaccounts/token", "", probeRegister},
	{"ClusterRole", "rbac.authorization.k8s.io", "roles", "", probeRegister},
	{"ClusterRole", "fleet.flotilla.dev", "assignments/status", "", probeRegister},
	{"ClusterRole", "coordination.k8s.io", "leases", "create", probeRegister},
	{"ClusterRole", "", "events", "", probeRegister},
	// Agents record Events too: their Role cannot be made without it, which the
	// probes see before the hub's own Events are missing.
	{"ClusterRole", "events.k8s.io", "events", "", probeRegister},
	// The Cluster API controller never syncs its watch, and the controllers started
	// with it wait: nothing is reconciled.
	{"ClusterRole", "cluster.x-k8s.io", "clusters", "", probeCluster},
	{"Role", "", "secrets", "", probeRegister},
	{"ClusterRole", "fleet.flotilla.dev", "agentrollouts", "create", probeAgent},
	// The receiver handler's cache (its path index) never syncs: the hub never starts.
	{"ClusterRole", "notification.flotilla.dev", "receivers", "list", probeStart},
	{"ClusterRole", "notification.flotilla.dev", "receivers/status", "", probeReceive},
	{"ClusterRole", "source.flotilla.dev", "gitrepositories", "patch", probeReceive},
}

// TestEachRuleIsNeeded applies the install to a real API server (with Cluster
// API's Cluster kind, as on a management cluster), runs the hub as its
// ServiceAccount through a cluster's life (probes above), and then, for each rule of
// the hub's ClusterRole and Role, runs it again without that rule and checks that
// the feature the rule is for breaks: the RBAC is not larger than needed. Every rule
// of the install must have a case here.
func TestEachRuleIsNeeded(t *testing.T) {
	cp := env.StartControlPlane(t, "hub", false)
	admin := cp.Client()
	installOn(t, cp.Config())
	if _, err := envtest.InstallCRDs(cp.Config(), envtest.CRDInstallOptions{Paths: []string{capiCRD(t)}}); err != nil {
		t.Fatalf("install the Cluster API CRD: %v", err)
	}
	repo := gitserver.New(t).CreateRepo("app")
	repo.Write(map[string]string{"deploy/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n  namespace: default\n"})
	if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "probes"}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(context.Background(), &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: "probes", Name: "app"},
		Spec:       sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		t.Fatal(err)
	}

	checkEveryRuleHasACase(t, admin)

	t.Run("the install as it is", func(t *testing.T) {
		if probe, err := runProbes(t, cp, "all", 0); err != nil {
			t.Fatalf("with every rule, %q fails: %v", probe, err)
		}
	})
	cases := ruleCases
	if os.Getenv(AllRulesEnv) == "" {
		// The one that needs the whole life of a cluster to show.
		cases = []ruleCase{ruleCases[8]}
		t.Logf("one rule of %d; %s=1 runs them all", len(ruleCases), AllRulesEnv)
	}
	for i, rc := range cases {
		group := rc.group
		if group == "" {
			group = "core"
		}
		name := strings.TrimSpace(fmt.Sprintf("without %s %s/%s %s", rc.role, group, rc.resource, rc.verb))
		t.Run(name, func(t *testing.T) {
			restore := dropRule(t, admin, rc)
			defer restore()
			probe, err := runProbes(t, cp, fmt.Sprintf("r%d", i), 20*time.Second)
			if err == nil {
				t.Fatalf("every probe passes without the rule: it is not needed")
			}
			t.Logf("breaks %q: %v", probe, err)
			if probe != rc.breaks {
				t.Errorf("breaks %q, want %q", probe, rc.breaks)
			}
		})
	}
}

// capiCRD is Cluster API's Cluster CRD from the module this repository requires.
func capiCRD(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/cluster-api").Output()
	if err != nil {
		t.Fatalf("locate the cluster-api module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "core", "config", "crd", "bases", "cluster.x-k8s.io_clusters.yaml")
}

func roleOf(t *testing.T, c client.Client, kind string) (client.Object, *[]rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	if kind == "Role" {
		r := &rbacv1.Role{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: manager.DefaultSystemNamespace, Name: "flotilla-hub"}, r); err != nil {
			t.Fatal(err)
		}
		return r, &r.Rules
	}
	r := &rbacv1.ClusterRole{}
	if err := c.Get(ctx, types.NamespacedName{Name: "flotilla-hub"}, r); err != nil {
		t.Fatal(err)
	}
	return r, &r.Rules
}

func (rc ruleCase) matches(r rbacv1.PolicyRule) bool {
	has := func(list []string, v string) bool {
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	return has(r.APIGroups, rc.group) && has(r.Resources, rc.resource) && (rc.verb == "" || has(r.Verbs, rc.verb))
}

func checkEveryRuleHasACase(t *testing.T, c client.Client) {
	t.Helper()
	for _, kind := range []string{"ClusterRole", "Role"} {
		_, rules := roleOf(t, c, kind)
		for _, r := range *rules {
			n := 0
			for _, rc := range ruleCases {
				if rc.role == kind && rc.matches(r) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s rule %v matches %d cases of ruleCases, want 1", kind, r, n)
			}
		}
	}
}

// dropRule removes the case's rule from the hub's role and returns what puts it back.
func dropRule(t *testing.T, c client.Client, rc ruleCase) func() {
	t.Helper()
	obj, rules := roleOf(t, c, rc.role)
	orig := append([]rbacv1.PolicyRule(nil), *rules...)
	var kept []rbacv1.PolicyRule
	for _, r := range orig {
		if !rc.matches(r) {
			kept = append(kept, r)
		}
	}
	if len(kept) != len(orig)-1 {
		t.Fatalf("the case matches %d rules of %s", len(orig)-len(kept), rc.role)
	}
	*rules = kept
	if err := c.Update(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	return func() {
		obj, rules := roleOf(t, c, rc.role)
		*rules = orig
		if err := c.Update(context.Background(), obj); err != nil {
			t.Errorf("restore %s: %v", rc.role, err)
		}
	}
}

// runProbes starts a hub as its ServiceAccount and takes a new cluster (named after
// id) through its life; it returns the first probe that fails. startTimeout bounds
// the hub's start (a hub that cannot watch a kind waits for it until then).
func runProbes(t *testing.T, cp *controlplane.ControlPlane, id string, startTimeout time.Duration) (string, error) {
	admin := cp.Client()
	ctx, cancel := context.WithCancel(context.Background())
	var h *manager.Hub
	defer func() {
		cancel()
		if h != nil {
			<-h.Done()
		}
	}()
	metricsAddr := env.FreeAddr(t)
	var timer *time.Timer
	if startTimeout > 0 {
		timer = time.AfterFunc(startTimeout, cancel)
	}
	h, err := manager.Start(ctx, manager.Options{
		Config: asHub(cp.Config()), StorageDir: t.TempDir(), ArtifactAddr: "127.0.0.1:0",
		MetricsAddr: metricsAddr, HealthAddr: "0", GCInterval: -1, PlatformNamespaces: []string{tenancy.AnyNamespace},
		// A new image at each run, so that a run without the rule cannot pass on an
		// earlier run's write.
		AgentImage: "registry.example.com/flotilla/flotilla-agent:probe-" + id,
	})
	if timer != nil && !timer.Stop() {
		return probeStart, errors.New("the hub did not start in time")
	}
	if err != nil {
		return probeStart, err
	}

	name := "probe-" + id
	ns := fleetv1.ClusterNamespace(name)
	cl := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"probe": id}}}
	if err := admin.Create(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The Cluster finalizer may never be removed by a hub without the rule.
		_ = admin.Delete(context.Background(), cl)
		var c fleetv1.Cluster
		if admin.Get(context.Background(), client.ObjectKeyFromObject(cl), &c) == nil && len(c.Finalizers) > 0 {
			c.Finalizers = nil
			_ = admin.Update(context.Background(), &c)
		}
	})
	within := func(what string, check func() error) error {
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := check()
			if err == nil {
				return nil
			}
			select {
			case <-h.Done():
				return fmt.Errorf("hub stopped: %v", h.Err())
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %w", what, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	bg := context.Background()

	if err := within("agent rollout", func() error {
		var ar fleetv1.AgentRollout
		if err := admin.Get(bg, types.NamespacedName{Name: fleetv1.AgentRolloutName}, &ar); err != nil {
			return err
		}
		if want := "registry.example.com/flotilla/flotilla-agent:probe-" + id; ar.Spec.Image != want {
			return fmt.Errorf("spec.image %q, want %q", ar.Spec.Image, want)
		}
		return nil
	}); err != nil {
		return probeAgent, err
	}
	if err := within("cluster", func() error {
		var c fleetv1.Cluster
		if err := admin.Get(bg, client.ObjectKeyFromObject(cl), &c); err != nil {
			return err
		}
		if len(c.Finalizers) == 0 || c.Status.Namespace != ns {
			return fmt.Errorf("finalizers %v, status.namespace %q", c.Finalizers, c.Status.Namespace)
		}
		return admin.Get(bg, types.NamespacedName{Name: ns}, &corev1.Namespace{})
	}); err != nil {
		return probeCluster, err
	}
	if err := within("trust", func() error {
		return admin.Get(bg, types.NamespacedName{Namespace: ns, Name: fleetv1.TrustConfigMapName}, &corev1.ConfigMap{})
	}); err != nil {
		return probeTrust, err
	}

	token, _, err := hubreg.IssueBootstrapToken(bg, admin, manager.DefaultSystemNamespace, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hc := httpsClient(t, h.ArtifactCA())
	var reg fregistration.Response
	if err := register(hc, h.ArtifactBaseURL(), fregistration.Request{Cluster: name, Token: token}, &reg); err != nil {
		return probeRegister, err
	}

	agentCfg := &rest.Config{Host: cp.URL(), BearerToken: reg.Token, TLSClientConfig: rest.TLSClientConfig{CAData: cp.Config().CAData}}
	agent, err := client.New(agentCfg, client.Options{Scheme: api.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.AgentLeaseName},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), RenewTime: &metav1.MicroTime{Time: time.Now()}, LeaseDurationSeconds: ptr.To(int32(40))},
	}
	if err := agent.Create(bg, lease); err != nil {
		return probeBeat, fmt.Errorf("the agent's Role (made by the hub) refuses its Lease: %w", err)
	}
	if err := within("heartbeat", func() error {
		var c fleetv1.Cluster
		if err := admin.Get(bg, client.ObjectKeyFromObject(cl), &c); err != nil {
			return err
		}
		if !apimeta.IsStatusConditionTrue(c.Status.Conditions, meta.ReadyCondition) {
			return errors.New("not Ready")
		}
		return nil
	}); err != nil {
		return probeBeat, err
	}

	ks := &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: "probes", Name: name},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path:      "./deploy", Interval: metav1.Duration{Duration: time.Hour},
			Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"probe": id}}},
		},
	}
	if err := admin.Create(bg, ks); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), ks) })
	var assignment fleetv1.Assignment
	if err := within("assignment", func() error {
		var list fleetv1.AssignmentList
		if err := agent.List(bg, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		// The cluster may also hold the AgentRollout's Assignment (--agent-image).
		var mine []fleetv1.Assignment
		for _, a := range list.Items {
			if a.Spec.Owner.Kind == deliveryv1.KustomizationKind && a.Spec.Owner.Name == name {
				mine = append(mine, a)
			}
		}
		if len(mine) != 1 || mine[0].Spec.Artifact.Signature == "" {
			var k deliveryv1.Kustomization
			_ = admin.Get(bg, client.ObjectKeyFromObject(ks), &k)
			return fmt.Errorf("%d Assignments of the Kustomization (%d in all); Kustomization conditions %v", len(mine), len(list.Items), k.Status.Conditions)
		}
		assignment = mine[0]
		return nil
	}); err != nil {
		return probeDeliver, err
	}
	if err := within("events", func() error {
		var list eventsv1.EventList
		if err := admin.List(bg, &list, client.InNamespace("probes")); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name || e.Regarding.Name == "app" {
				return nil
			}
		}
		return fmt.Errorf("no Event on Kustomization %s or GitRepository app (%d Events)", name, len(list.Items))
	}); err != nil {
		return probeEvents, err
	}
	if err := download(hc, assignment.Spec.Artifact.URL, reg.Token); err != nil {
		return probeDownload, err
	}
	// Bound to the install's flotilla-metrics-reader.
	scraper := env.MetricsToken(t, admin, true)
	if err := within("metrics", func() error {
		_, code, err := env.Scrape("https://"+metricsAddr+"/metrics", scraper)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("HTTP %d", code)
		}
		return err
	}); err != nil {
		return probeMetrics, err
	}

	const hookToken = "probe-token"
	if err := admin.Create(bg, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "probes", Name: name},
		StringData: map[string]string{notificationv1.TokenKey: hookToken}}); err != nil {
		t.Fatal(err)
	}
	rcv := &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: "probes", Name: name},
		Spec: notificationv1.ReceiverSpec{Type: notificationv1.GitHubReceiver, SecretRef: meta.LocalObjectReference{Name: name},
			Resources: []notificationv1.ReceiverResource{{Kind: sourcev1.GitRepositoryKind, Name: "app"}}}}
	if err := admin.Create(bg, rcv); err != nil {
		t.Fatal(err)
	}
	if err := within("receiver", func() error {
		if err := admin.Get(bg, client.ObjectKeyFromObject(rcv), rcv); err != nil {
			return err
		}
		if rcv.Status.WebhookPath == "" {
			return fmt.Errorf("no webhookPath; conditions %v", rcv.Status.Conditions)
		}
		return nil
	}); err != nil {
		return probeReceive, err
	}
	// One call: the Receiver allows a few a second, and a refusal is the answer.
	if err := func() error {
		body := []byte(`{"ref":"refs/heads/main"}`)
		req, _ := http.NewRequest(http.MethodPost, h.ArtifactBaseURL()+rcv.Status.WebhookPath, bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", receiver.Sign("sha256", hookToken, body))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
		}
		return nil
	}(); err != nil {
		return probeReceive, err
	}
	return "", nil
}

func httpsClient(t *testing.T, caPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the hub's artifact CA does not parse")
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

func register(hc *http.Client, base string, req fregistration.Request, resp *fregistration.Response) error {
	b, _ := json.Marshal(req)
	r, err := hc.Post(strings.TrimSuffix(base, "/")+fregistration.Path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusOK {
		return fmt.Errorf("register: %s: %s", r.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, resp)
}

func download(hc *http.Client, url, token string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	r, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, r.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
