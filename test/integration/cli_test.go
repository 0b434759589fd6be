package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/cli"
	"github.com/flotilla-dev/flotilla/test/charts"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// cliRun runs one CLI command line against the fleet's hub and returns its standard
// output and standard error apart.
func cliRun(f *fleetenv.Fleet, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd := cli.NewRootCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"--kubeconfig", f.HubKubeconfig()}, args...))
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func secret(ns, name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\nstringData:\n  token: %q\n", name, ns, value)
}

// writeCheckout writes files as a local checkout (a folder with .git) and returns it.
func writeCheckout(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCLIAgainstFleet runs each CLI command of issue 13 against the shared fleet (a
// real hub, spokes and agents) and checks what it prints and what it changes.
func TestCLIAgainstFleet(t *testing.T) {
	t.Parallel()
	fleet, ns, appNS := sharedFleet(t, "cli")
	hub := fleet.HubClient()
	ctx := context.Background()
	s1 := spokeTarget(fleet, "spoke-1", appNS)

	files := map[string]string{
		"base/ns.yaml":            namespace(appNS),
		"base/settings.yaml":      configMap(appNS, "settings", "v1-${cluster_name}-${region}"),
		"base/token.yaml":         secret(appNS, "token", "first-secret-value"),
		"base/kustomization.yaml": kustomization("ns.yaml", "settings.yaml", "token.yaml"),
		"app/kustomization.yaml":  kustomization("../base"),
		"app/unrelated/notes.txt": "not YAML",
	}
	gitSource(t, hub, ns, "src", files)
	ks := deploy(t, hub, ns, "app", "src", "app", func(s *deliveryv1.KustomizationSpec) {
		s.Placement = byName("spoke-1")
		s.PostBuild = &meta.PostBuild{}
	})
	s1.wantValue(t, "settings", "v1-spoke-1-ap-south")
	checkout := writeCheckout(t, files)
	appDir := filepath.Join(checkout, "app")
	spoke := []string{"--cluster", "spoke-1", "--fleet-dir", fleet.Dir()}

	t.Run("get and export", func(t *testing.T) {
		out, _, err := cliRun(fleet, "get", "ks", "-n", ns)
		if err != nil || !strings.Contains(out, "app") {
			t.Fatalf("get: %v\n%s", err, out)
		}
		out, _, err = cliRun(fleet, "export", "kustomization", "app", "-n", ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, unwanted := range []string{"status:", "managedFields", "uid:", "resourceVersion", "creationTimestamp", "generation:"} {
			if strings.Contains(out, unwanted) {
				t.Errorf("export holds %q:\n%s", unwanted, out)
			}
		}
		var got deliveryv1.Kustomization
		if err := yaml.UnmarshalStrict([]byte(out), &got); err != nil || got.Kind != deliveryv1.KustomizationKind ||
			got.APIVersion != deliveryv1.GroupVersion.String() || got.Spec.Path != "app" || got.Spec.SourceRef.Name != "src" {
			t.Errorf("export %v:\n%s", err, out)
		}
		out, _, err = cliRun(fleet, "export", "fclusters", "spoke-1")
		if err != nil || !strings.Contains(out, "kind: Cluster") || !strings.Contains(out, "region: ap-south") || strings.Contains(out, "status:") {
			t.Errorf("export cluster: %v\n%s", err, out)
		}
		out, _, err = cliRun(fleet, "export", "gitrepositories", "-n", ns)
		if err != nil || !strings.Contains(out, "kind: GitRepository") || !strings.Contains(out, "url: ") {
			t.Errorf("export gitrepositories: %v\n%s", err, out)
		}
	})

	t.Run("build", func(t *testing.T) {
		out, _, err := cliRun(fleet, "build", "kustomization", "--path", appDir)
		if err != nil || !strings.Contains(out, "value: \"v1-${cluster_name}-${region}\"") || !strings.Contains(out, "kind: Namespace") {
			t.Errorf("build without a cluster keeps the placeholders: %v\n%s", err, out)
		}
		out, _, err = cliRun(fleet, "build", "kustomization", "app", "-n", ns, "--path", appDir, "--cluster", "spoke-2")
		if err != nil || !strings.Contains(out, "value: \"v1-spoke-2-eu-west\"") {
			t.Errorf("build for spoke-2 substitutes its variables: %v\n%s", err, out)
		}
		// The hub's rules: no remote base.
		bad := writeCheckout(t, map[string]string{"x/kustomization.yaml": kustomization("https://github.com/example/repo//base")})
		if _, _, err := cliRun(fleet, "build", "ks", "--path", filepath.Join(bad, "x")); err == nil {
			t.Error("a remote base was built")
		} else {
			t.Logf("remote base: %v", err)
		}
	})

	t.Run("tree", func(t *testing.T) {
		// The hub keeps the count only; the list is the agent's record on the spoke.
		asg := &fleetv1.Assignment{}
		key := client.ObjectKey{Namespace: fleetv1.ClusterNamespace("spoke-1"), Name: fleetv1.AssignmentName(deliveryv1.KustomizationKind, ns, "app")}
		if err := hub.Get(ctx, key, asg); err != nil {
			t.Fatal(err)
		}
		if asg.Status.Inventory != 3 || len(asg.Status.Entries) != 0 {
			t.Errorf("hub status: inventory %d, entries %v; want 3 and no entries", asg.Status.Inventory, asg.Status.Entries)
		}
		out, _, err := cliRun(fleet, append([]string{"tree", "kustomization", "app", "-n", ns}, spoke...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", out)
		want := "Kustomization/" + ns + "/app on spoke-1 (" + asg.Status.AppliedRevision + ")\n" +
			"├── Namespace/" + appNS + "\n├── ConfigMap/" + appNS + "/settings\n└── Secret/" + appNS + "/token\n"
		if out != want {
			t.Errorf("tree printed\n%s\nwant\n%s", out, want)
		}
		if _, _, err := cliRun(fleet, "tree", "ks", "app", "-n", ns, "--cluster", "spoke-2", "--fleet-dir", fleet.Dir()); err == nil || !strings.Contains(err.Error(), "not assigned to cluster spoke-2") {
			t.Errorf("tree on a cluster not targeted: %v", err)
		}
		// No way to reach the spoke: the error says how to give one.
		if _, _, err := cliRun(fleet, "tree", "ks", "app", "-n", ns, "--cluster", "spoke-1"); err == nil ||
			!strings.Contains(err.Error(), `context named "spoke-1"`) || !strings.Contains(err.Error(), "--spoke-kubeconfig") {
			t.Errorf("tree with no way to reach the spoke: %v", err)
		}
		// An agent older than the record listed the objects in the hub's status: with
		// no record to read (here: none in the namespace asked), that list is shown.
		before := asg.DeepCopy()
		asg.Status.Entries = []fleetv1.InventoryEntry{{ID: appNS + "_settings__ConfigMap", Version: "v1"}, {ID: appNS + "_old__ConfigMap", Version: "v1"}}
		if err := hub.Status().Patch(ctx, asg, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
		out, _, err = cliRun(fleet, append([]string{"tree", "ks", "app", "-n", ns, "--agent-namespace", "no-agent-here"}, spoke...)...)
		if err != nil || !strings.HasSuffix(out, "├── ConfigMap/"+appNS+"/settings\n└── ConfigMap/"+appNS+"/old\n") {
			t.Errorf("tree from an older agent's hub status: %v\n%s", err, out)
		}
	})

	t.Run("trace", func(t *testing.T) {
		out, _, err := cliRun(fleet, append([]string{"trace", "cm/settings", "-n", appNS}, spoke...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", out)
		for _, want := range []string{
			"ConfigMap/" + appNS + "/settings", "field manager flotilla/ks." + ns + ".app",
			"Kustomization " + ns + "/app", "GitRepository " + ns + "/src", "http://127.0.0.1:",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q", want)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "Revision applied:") && !strings.Contains(line, "main@sha1:") {
				t.Errorf("no revision applied: %q", line)
			}
		}
		handmade := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "handmade"}}
		if err := s1.c.Create(ctx, handmade); err != nil {
			t.Fatal(err)
		}
		if _, _, err := cliRun(fleet, append([]string{"trace", "configmap", "handmade", "-n", appNS}, spoke...)...); err == nil || !strings.Contains(err.Error(), "not managed by Flotilla") {
			t.Errorf("trace of an object Flotilla does not manage: %v", err)
		}
	})

	t.Run("spoke reached by a context named after the cluster", func(t *testing.T) {
		merged := clientcmdapi.NewConfig()
		for name, path := range map[string]string{"hub": fleet.HubKubeconfig(), "spoke-1": fleet.Kubeconfig("spoke-1")} {
			cfg, err := clientcmd.LoadFromFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ctxt := cfg.Contexts[cfg.CurrentContext]
			merged.Clusters[name] = cfg.Clusters[ctxt.Cluster]
			merged.AuthInfos[name] = cfg.AuthInfos[ctxt.AuthInfo]
			merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		}
		merged.CurrentContext = "hub"
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := clientcmd.WriteToFile(*merged, path); err != nil {
			t.Fatal(err)
		}
		out, _, err := cliRun(fleet, "--kubeconfig", path, "trace", "configmap", "settings", "-n", appNS, "--cluster", "spoke-1")
		if err != nil || !strings.Contains(out, "Kustomization "+ns+"/app") {
			t.Errorf("trace through the context spoke-1: %v\n%s", err, out)
		}
		out, _, err = cliRun(fleet, "trace", "configmap", "settings", "-n", appNS, "--cluster", "spoke-1", "--spoke-kubeconfig", fleet.Kubeconfig("spoke-1"))
		if err != nil || !strings.Contains(out, "Kustomization "+ns+"/app") {
			t.Errorf("trace with --spoke-kubeconfig: %v\n%s", err, out)
		}
		if _, _, err := cliRun(fleet, "trace", "configmap", "settings", "-n", appNS, "--cluster", "spoke-1"); err == nil || !strings.Contains(err.Error(), `context named "spoke-1"`) {
			t.Errorf("trace with no way to reach the spoke: %v", err)
		}
	})

	t.Run("diff", func(t *testing.T) {
		out, errOut, err := cliRun(fleet, append([]string{"diff", "kustomization", "app", "-n", ns, "--path", appDir}, spoke...)...)
		if err != nil || !strings.Contains(errOut, "no changes on spoke-1") {
			t.Fatalf("diff of the deployed revision: %v\n%s%s", err, out, errOut)
		}
		changed := map[string]string{}
		for k, v := range files {
			changed[k] = v
		}
		changed["base/settings.yaml"] = configMap(appNS, "settings", "v2-${cluster_name}")
		changed["base/extra.yaml"] = configMap(appNS, "extra", "new")
		changed["base/token.yaml"] = secret(appNS, "token", "second-secret-value")
		changed["base/kustomization.yaml"] = kustomization("settings.yaml", "extra.yaml", "token.yaml")
		dir := writeCheckout(t, changed)
		out, _, err = cliRun(fleet, append([]string{"diff", "ks", "app", "-n", ns, "--path", filepath.Join(dir, "app")}, spoke...)...)
		t.Logf("\n%s", out)
		var exit *cli.ExitError
		if !errors.As(err, &exit) || exit.Code != 1 {
			t.Errorf("diff with changes: %v, want exit code 1", err)
		}
		for _, want := range []string{
			"► ConfigMap/" + appNS + "/settings drifted", `-  value: v1-spoke-1-ap-south`, `+  value: v2-spoke-1`,
			"► ConfigMap/" + appNS + "/extra created", "► Namespace/" + appNS + " deleted",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q", want)
			}
		}
		// Secret values never show, changed or not: only a hash of each.
		if !strings.Contains(out, "► Secret/"+appNS+"/token drifted") || !strings.Contains(out, "token: <hidden ") {
			t.Errorf("the Secret's change is not shown as hashes:\n%s", out)
		}
		for _, v := range []string{"first-secret-value", "second-secret-value", base64.StdEncoding.EncodeToString([]byte("first-secret-value")), base64.StdEncoding.EncodeToString([]byte("second-secret-value"))} {
			if strings.Contains(out, v) {
				t.Errorf("diff shows a Secret value %q", v)
			}
		}
		if _, _, err := cliRun(fleet, "diff", "ks", "app", "-n", ns, "--path", appDir, "--cluster", "spoke-2", "--fleet-dir", fleet.Dir()); err == nil || !strings.Contains(err.Error(), "not assigned to cluster spoke-2") {
			t.Errorf("diff on a cluster not targeted: %v", err)
		}
		// A dry run: the spoke is as it was.
		s1.wantValue(t, "settings", "v1-spoke-1-ap-south")
		if _, err := s1.value("extra"); err == nil {
			t.Error("diff created ConfigMap extra")
		}
	})

	t.Run("events", func(t *testing.T) {
		env.Eventually(t, "a NewArtifact event for the Kustomization", func() error {
			out, _, err := cliRun(fleet, "events", "--for", "kustomization/app", "-n", ns)
			if err != nil {
				return err
			}
			if !strings.Contains(out, "NewArtifact") || !strings.Contains(out, "kustomization/app") {
				return errors.New("not listed:\n" + out)
			}
			if strings.Contains(out, "gitrepository/") {
				return errors.New("--for let another object's events through:\n" + out)
			}
			return nil
		})
		// A cluster-scoped object's Events: the Cluster's agent connected when the fleet started.
		env.Eventually(t, "spoke-1's HeartbeatFresh event", func() error {
			out, _, err := cliRun(fleet, "events", "--for", "fcluster/spoke-1")
			if err != nil {
				return err
			}
			if !strings.Contains(out, meta.HeartbeatFreshReason) || !strings.Contains(out, "cluster/spoke-1") || strings.Contains(out, "spoke-2") {
				return errors.New("not listed alone:\n" + out)
			}
			return nil
		})
		out, _, err := cliRun(fleet, "events", "-A")
		if err != nil || !strings.HasPrefix(out, "NAMESPACE") || !strings.Contains(out, ns+" ") {
			t.Errorf("events -A: %v\n%s", err, out)
		}
		// --watch prints an event recorded after it started.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var watched syncBuffer
		cmd := cli.NewRootCommand()
		cmd.SetOut(&watched)
		cmd.SetErr(&watched)
		cmd.SetArgs([]string{"--kubeconfig", fleet.HubKubeconfig(), "events", "--watch", "-n", ns, "--for", "kustomization/app"})
		done := make(chan error, 1)
		go func() { done <- cmd.ExecuteContext(wctx) }()
		time.Sleep(time.Second) // let it list and start watching
		patchKustomization(t, ks, func(s *deliveryv1.KustomizationSpec) { s.Placement.ClusterGroups = []string{"no-such-group"} })
		env.Eventually(t, "the watch to print ClusterGroupNotFound", func() error {
			if !strings.Contains(watched.String(), "ClusterGroupNotFound") {
				return errors.New("not yet:\n" + watched.String())
			}
			return nil
		})
		cancel()
		if err := <-done; err != nil {
			t.Errorf("events --watch: %v", err)
		}
		patchKustomization(t, ks, func(s *deliveryv1.KustomizationSpec) { s.Placement.ClusterGroups = nil })
	})

	t.Run("completion", func(t *testing.T) {
		out, _, err := cliRun(fleet, "__complete", "get", "kustomizations", "-n", ns, "")
		if err != nil || !strings.Contains(out, "app\n") {
			t.Errorf("names: %v\n%s", err, out)
		}
		out, _, err = cliRun(fleet, "__complete", "reconcile", "kustomization", "-n", ns, "a")
		if err != nil || !strings.Contains(out, "app\n") {
			t.Errorf("reconcile's names: %v\n%s", err, out)
		}
		out, _, err = cliRun(fleet, "__complete", "tree", "ks", "app", "-n", ns, "--cluster", "spoke-")
		if err != nil || !strings.Contains(out, "spoke-1\n") || !strings.Contains(out, "spoke-3\n") {
			t.Errorf("--cluster: %v\n%s", err, out)
		}
		for _, shell := range []string{"bash", "zsh", "fish"} {
			out, _, err := cliRun(fleet, "completion", shell)
			if err != nil || !strings.Contains(out, "flotilla") {
				t.Errorf("completion %s: %v", shell, err)
			}
		}
	})

	t.Run("reconcile, suspend, resume", func(t *testing.T) {
		_, errOut, err := cliRun(fleet, "reconcile", "ks", "app", "-n", ns, "--with-source", "--timeout", "1m")
		if err != nil || !strings.Contains(errOut, "✔ GitRepository "+ns+"/src reconciled") || !strings.Contains(errOut, "✔ Kustomization "+ns+"/app reconciled, revision main@sha1:") {
			t.Errorf("reconcile: %v\n%s", err, errOut)
		}
		if _, _, err := cliRun(fleet, "suspend", "ks", "app", "-n", ns); err != nil {
			t.Fatal(err)
		}
		if out, _, err := cliRun(fleet, "get", "ks", "app", "-n", ns); err != nil || !strings.Contains(out, "suspended") {
			t.Errorf("get after suspend: %v\n%s", err, out)
		}
		if _, errOut, err := cliRun(fleet, "resume", "ks", "app", "-n", ns, "--timeout", "1m"); err != nil {
			t.Errorf("resume: %v\n%s", err, errOut)
		}
	})
}

// patchKustomization changes a Kustomization's spec on the hub.
func patchKustomization(t *testing.T, ks *deliveryv1.Kustomization, change func(*deliveryv1.KustomizationSpec)) {
	t.Helper()
	hub := shared.Get(t).HubClient()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur deliveryv1.Kustomization
		if err := hub.Get(context.Background(), client.ObjectKeyFromObject(ks), &cur); err != nil {
			return err
		}
		change(&cur.Spec)
		return hub.Update(context.Background(), &cur)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer a command writes to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCLIHelmRelease: tree and trace follow a HelmRelease's objects on a spoke back
// through Helm's release annotations to the HelmRelease and its Git source.
func TestCLIHelmRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "clihelm")
	hub := fleet.HubClient()

	repo := gitserver.New(t).CreateRepo("charts")
	repo.Write(charts.Simple("hello", "0.1.0").FilesUnder(t, "charts/hello/"))
	if err := hub.Create(ctx, &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "charts"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		t.Fatal(err)
	}
	hr := &deliveryv1.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello"},
		Spec: deliveryv1.HelmReleaseSpec{
			Chart: deliveryv1.HelmChartTemplate{Chart: "./charts/hello",
				SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "charts"}},
			ReleaseName: "hello", TargetNamespace: appNS, Interval: metav1.Duration{Duration: time.Hour},
			Install:   &meta.HelmInstall{CreateNamespace: true},
			Placement: byName("spoke-3"),
		},
	}
	if err := hub.Create(ctx, hr); err != nil {
		t.Fatal(err)
	}
	wantLast(t, helmOn(t, fleet, "spoke-3", appNS), "spoke-3", "hello", "0.1.0")
	env.WaitFor(t, hub, &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{
		Namespace: fleetv1.ClusterNamespace("spoke-3"), Name: fleetv1.AssignmentName(deliveryv1.HelmReleaseKind, ns, "hello")}},
		func(a *fleetv1.Assignment) error {
			if a.Status.Release == nil || a.Status.Release.Revision != 1 {
				return fmt.Errorf("release %+v", a.Status.Release)
			}
			return nil
		})

	out, _, err := cliRun(fleet, "tree", "hr", "hello", "-n", ns, "--cluster", "spoke-3")
	if err != nil || !strings.Contains(out, "└── HelmRelease "+appNS+"/hello revision 1 deployed (chart 0.1.0)") {
		t.Errorf("tree: %v\n%s", err, out)
	}
	out, _, err = cliRun(fleet, "trace", "configmap", "hello", "-n", appNS, "--cluster", "spoke-3", "--fleet-dir", fleet.Dir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{
		"Helm release " + appNS + "/hello, installed by the agent", "HelmRelease " + ns + "/hello",
		"Chart:", "./charts/hello", "revision 1 (deployed, chart 0.1.0)", "GitRepository " + ns + "/charts",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
}
