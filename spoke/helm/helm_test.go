package helm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	"github.com/flotilla-dev/flotilla/spoke/helm"
	"github.com/flotilla-dev/flotilla/test/charts"
	"github.com/flotilla-dev/flotilla/test/env"
)

// The tests share one spoke API server that runs workloads (kube-controller-manager
// and kwok, whose stages end test hook pods as their label says) and one Runner, as
// the agent has; each test works in namespaces of its own.
func TestMain(m *testing.M) {
	env.DefaultParallel(4)
	env.Main(m)
}

type fixture struct {
	cp     *controlplane.ControlPlane
	runner *helm.Runner
}

var shared = env.NewShared(func(t testing.TB) fixture {
	cp := env.StartControlPlane(t, "spoke", false)
	env.StartNodes(t, cp)
	return fixture{cp: cp, runner: helm.New(cp.Config(), env.Log())}
})

// release is one test's release: its namespace, identity and settings.
type release_ struct {
	t      *testing.T
	f      fixture
	c      client.Client
	ns     string
	user   string
	s      *meta.HelmReleaseSettings
	status *fleetv1.ReleaseStatus
}

func newRelease(t *testing.T, name string, asServiceAccount bool, change func(*meta.HelmReleaseSettings)) *release_ {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server, kube-controller-manager and kwok")
	}
	f := shared.Get(t)
	ns := env.Unique(name)
	c := f.cp.Client()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	r := &release_{t: t, f: f, c: c, ns: ns, s: &meta.HelmReleaseSettings{
		ReleaseName: name, StorageNamespace: ns,
		Install:        &meta.HelmInstall{CRDs: meta.CRDsCreate, Remediation: &meta.InstallRemediation{}},
		Upgrade:        &meta.HelmUpgrade{CRDs: meta.CRDsSkip, Remediation: &meta.UpgradeRemediation{Strategy: meta.RemediateRollback}},
		Test:           &meta.HelmTest{},
		Rollback:       &meta.HelmRollback{},
		Uninstall:      &meta.HelmUninstall{},
		DriftDetection: &meta.HelmDriftDetection{Mode: meta.HelmDriftDisabled},
	}}
	if asServiceAccount {
		r.user = serviceAccount(t, c, ns, "deployer", true)
	}
	if change != nil {
		change(r.s)
	}
	return r
}

// serviceAccount makes a ServiceAccount in ns, allowed everything in ns when bound
// (a Role of its own: the admin ClusterRole is aggregated by a controller, later),
// and returns the user name it acts as.
func serviceAccount(t *testing.T, c client.Client, ns, name string, bound bool) string {
	t.Helper()
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}); err != nil {
		t.Fatal(err)
	}
	if bound {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: name}},
		}
		for _, o := range []client.Object{role, rb} {
			if err := c.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	user := "system:serviceaccount:" + ns + ":" + name
	if bound {
		// The API server's RBAC cache learns the binding a moment later (longer on a
		// loaded machine): wait until it grants what Helm's storage does first.
		env.EventuallyWithin(t, 30*time.Second, "the deployer's Role to take effect", func() error {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "secrets"},
			}}
			if err := c.Create(ctx, sar); err != nil {
				return err
			}
			if !sar.Status.Allowed {
				return fmt.Errorf("%s may not list secrets in %s yet", user, ns)
			}
			return nil
		})
	}
	return user
}

// art is a Helm artifact of ch and values, as the hub packs it.
type art struct {
	digest, revision string
	files            map[string][]byte
}

func pack(t *testing.T, ch charts.Chart, values string) art {
	t.Helper()
	files := map[string][]byte{artifact.HelmValuesFile: []byte(values)}
	for name, data := range ch.FilesUnder(t, artifact.HelmChartDir+"/") {
		files[name] = []byte(data)
	}
	data, err := artifact.Pack(files)
	if err != nil {
		t.Fatal(err)
	}
	return art{digest: artifact.Digest(data), revision: ch.Version, files: files}
}

func (r *release_) request(a art, vars map[string]string, driftCheck bool) helm.Request {
	return helm.Request{
		Settings: r.s, Digest: a.digest, Revision: a.revision, Files: a.files, Vars: vars,
		Namespace: r.ns, User: r.user, Timeout: time.Minute, Previous: r.status,
		DriftCheck: driftCheck, FieldManager: "test",
	}
}

// reconcile runs one reconcile, remembering the status as the agent does.
func (r *release_) reconcile(a art, vars map[string]string, driftCheck bool) *helm.Result {
	r.t.Helper()
	res, err := r.f.runner.Reconcile(context.Background(), r.request(a, vars, driftCheck))
	if err != nil {
		r.t.Fatalf("reconcile: %v", err)
	}
	st := res.Release
	r.status = &st
	r.t.Logf("reconcile: ready=%v stalled=%v %s: %s; release %+v", res.Ready, res.Stalled, res.Reason, res.Message, res.Release)
	return res
}

func (r *release_) ready(a art, vars map[string]string) *helm.Result {
	r.t.Helper()
	res := r.reconcile(a, vars, false)
	if !res.Ready || !res.Deployed || res.Reason != meta.SucceededReason {
		r.t.Fatalf("not ready: %s: %s", res.Reason, res.Message)
	}
	return res
}

func (r *release_) configMap(name string) *corev1.ConfigMap {
	r.t.Helper()
	cm := &corev1.ConfigMap{}
	if err := r.c.Get(context.Background(), types.NamespacedName{Namespace: r.ns, Name: name}, cm); err != nil {
		r.t.Fatalf("ConfigMap %s: %v", name, err)
	}
	return cm
}

// history is what `helm history` shows: Helm's own history action on the Secret
// storage of the spoke.
func (r *release_) history() []*release.Release {
	r.t.Helper()
	hist, err := r.f.runner.History(r.request(art{}, nil, false))
	if err != nil {
		r.t.Fatalf("history: %v", err)
	}
	return hist
}

func statuses(hist []*release.Release) string {
	var out []string
	for _, h := range hist {
		out = append(out, fmt.Sprintf("%d:%s:%s", h.Version, h.Info.Status, h.Chart.Metadata.Version))
	}
	return strings.Join(out, " ")
}

func TestInstallUpgradeUninstallAsServiceAccount(t *testing.T) {
	t.Parallel()
	r := newRelease(t, "web", true, nil)
	ctx := context.Background()
	v1 := pack(t, charts.Simple("web", "1.0.0"), "greeting: hi\ncluster: ${cluster_name}\n")
	vars := map[string]string{"cluster_name": "spoke-a"}

	res := r.ready(v1, vars)
	if res.Release.Revision != 1 || res.Release.Status != "deployed" || res.Release.ChartVersion != "1.0.0" || res.Objects != 1 {
		t.Errorf("release %+v, objects %d", res.Release, res.Objects)
	}
	cm := r.configMap("web")
	if cm.Data["greeting"] != "hi" || cm.Data["cluster"] != "spoke-a" || cm.Data["chartVersion"] != "1.0.0" {
		t.Errorf("ConfigMap data %v: values and the substituted cluster name expected", cm.Data)
	}
	if !managedBy(cm, helm.FieldManager) {
		t.Errorf("ConfigMap not written by Helm: %v", cm.ManagedFields)
	}
	// Helm's Secret storage, where helm list finds it.
	secrets := &corev1.SecretList{}
	if err := r.c.List(ctx, secrets, client.InNamespace(r.ns), client.MatchingLabels{"owner": "helm", "name": "web"}); err != nil || len(secrets.Items) != 1 {
		t.Errorf("release Secrets: %v, %d", err, len(secrets.Items))
	}

	t.Run("the same artifact again does nothing", func(t *testing.T) {
		r.t = t
		r.ready(v1, vars)
		if h := r.history(); len(h) != 1 {
			t.Errorf("history %s, want one revision", statuses(h))
		}
	})
	t.Run("a cluster variable that changes the values upgrades", func(t *testing.T) {
		r.t = t
		// The artifact is the same (the hub builds one for the fleet); the values
		// this cluster substitutes are not.
		res := r.ready(v1, map[string]string{"cluster_name": "spoke-b"})
		if got := r.configMap("web").Data["cluster"]; got != "spoke-b" || res.Release.Revision != 2 {
			t.Errorf("cluster %q in revision %d, want spoke-b in revision 2", got, res.Release.Revision)
		}
		r.ready(v1, map[string]string{"cluster_name": "spoke-b", "unused": "x"})
		if h := r.history(); len(h) != 2 {
			t.Errorf("history %s: a variable the values do not use made a revision", statuses(h))
		}
	})
	v2 := pack(t, charts.Simple("web", "1.1.0"), "greeting: hi\ncluster: ${cluster_name}\n")
	t.Run("a new chart version upgrades", func(t *testing.T) {
		r.t = t
		res := r.ready(v2, vars)
		if res.Release.Revision != 3 || res.Release.ChartVersion != "1.1.0" {
			t.Errorf("release %+v", res.Release)
		}
		if got := r.configMap("web").Data["chartVersion"]; got != "1.1.0" {
			t.Errorf("chartVersion %q", got)
		}
	})
	v3 := pack(t, charts.Simple("web", "1.1.0"), "greeting: bonjour\ncluster: ${cluster_name:=nowhere}\n")
	t.Run("new values upgrade", func(t *testing.T) {
		r.t = t
		res := r.ready(v3, map[string]string{})
		if res.Release.Revision != 4 {
			t.Errorf("release %+v", res.Release)
		}
		cm := r.configMap("web")
		if cm.Data["greeting"] != "bonjour" || cm.Data["cluster"] != "nowhere" {
			t.Errorf("data %v", cm.Data)
		}
	})
	t.Run("helm history shows the revisions in Secret storage", func(t *testing.T) {
		r.t = t
		if got, want := statuses(r.history()), "1:superseded:1.0.0 2:superseded:1.0.0 3:superseded:1.1.0 4:deployed:1.1.0"; got != want {
			t.Errorf("history %s, want %s", got, want)
		}
	})
	t.Run("values that do not parse after substitution leave the release running", func(t *testing.T) {
		r.t = t
		// The values turn into a string, which is no map of values.
		bad := pack(t, charts.Simple("web", "1.2.0"), "${values}\n")
		res := r.reconcile(bad, map[string]string{"values": "not a map"}, false)
		if res.Ready || !res.Stalled || res.Reason != helm.ChartFailedReason || !strings.Contains(res.Message, "left as it runs") {
			t.Errorf("result %+v", res)
		}
		if res.Release.Revision != 4 || res.Release.Status != "deployed" {
			t.Errorf("release %+v", res.Release)
		}
	})
	t.Run("uninstall on release", func(t *testing.T) {
		r.t = t
		msg, err := r.f.runner.Uninstall(ctx, r.request(v3, nil, false))
		if err != nil || !strings.Contains(msg, "uninstalled release web (1 objects)") {
			t.Fatalf("uninstall: %q, %v", msg, err)
		}
		err = r.c.Get(ctx, types.NamespacedName{Namespace: r.ns, Name: "web"}, &corev1.ConfigMap{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap after uninstall: %v", err)
		}
		if err := r.c.List(ctx, secrets, client.InNamespace(r.ns), client.MatchingLabels{"owner": "helm"}); err != nil || len(secrets.Items) != 0 {
			t.Errorf("release Secrets left: %v, %d", err, len(secrets.Items))
		}
		msg, err = r.f.runner.Uninstall(ctx, r.request(v3, nil, false))
		if err != nil || !strings.Contains(msg, "nothing to uninstall") {
			t.Errorf("second uninstall: %q, %v", msg, err)
		}
	})
}

func managedBy(o client.Object, manager string) bool {
	for _, f := range o.GetManagedFields() {
		if f.Manager == manager {
			return true
		}
	}
	return false
}

func TestServiceAccountWithoutRights(t *testing.T) {
	t.Parallel()
	r := newRelease(t, "denied", false, nil)
	r.user = serviceAccount(t, r.c, r.ns, "nobody", false)
	res := r.reconcile(pack(t, charts.Simple("denied", "1.0.0"), "{}"), nil, false)
	if res.Ready || !res.Stalled || !strings.Contains(res.Message, "as "+r.user+", which is not allowed") || !strings.Contains(res.Message, "forbidden") {
		t.Errorf("result %s: %s", res.Reason, res.Message)
	}
	// With rights on the storage but not on what the chart makes, the install fails
	// naming the refusal.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "secrets"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}}}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "secrets"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "secrets"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: r.ns, Name: "nobody"}}}
	for _, o := range []client.Object{role, rb} {
		if err := r.c.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	env.Eventually(t, "install refused on the ConfigMap", func() error {
		res = r.reconcile(pack(t, charts.Simple("denied", "1.0.0"), "{}"), nil, false)
		if res.Reason != helm.InstallFailedReason || !strings.Contains(res.Message, "install of 1.0.0 failed") ||
			!strings.Contains(res.Message, `resource "configmaps"`) || !strings.Contains(res.Message, "forbidden") || !strings.Contains(res.Message, r.user) {
			r.status = nil
			return fmt.Errorf("%s: %s", res.Reason, res.Message)
		}
		return nil
	})
	// Helm refused before it recorded a revision.
	if res.Ready || !res.Stalled || res.Release.Failures != 1 || res.Release.Revision != 0 {
		t.Errorf("result %+v", res)
	}
}

func TestFailedUpgradeRolledBack(t *testing.T) {
	t.Parallel()
	r := newRelease(t, "rb", true, func(s *meta.HelmReleaseSettings) { s.Upgrade.Remediation.Retries = 1 })
	good := pack(t, charts.Simple("rb", "1.0.0"), "greeting: good\n")
	r.ready(good, nil)
	broken := pack(t, charts.Simple("rb", "1.1.0").With(charts.Broken()), "greeting: broken\n")

	res := r.reconcile(broken, nil, false)
	if res.Ready || res.Stalled || !res.Retry || res.Reason != helm.UpgradeFailedReason {
		t.Errorf("first failure: %+v", res)
	}
	if st := res.Release; st.Failures != 1 || st.AttemptedDigest != broken.digest || st.Status != "deployed" || st.Revision != 3 || st.ChartVersion != "1.0.0" ||
		!strings.Contains(st.LastAction, "upgrade to 1.1.0 failed: ") || !strings.Contains(st.LastAction, "not a valid key!") ||
		!strings.HasSuffix(st.LastAction, "; rolled back to revision 1") {
		t.Errorf("release after the first failure %+v", st)
	}
	if res.Deployed {
		t.Error("the broken digest counts as deployed")
	}
	if got := r.configMap("rb").Data["greeting"]; got != "good" {
		t.Errorf("greeting %q after the rollback", got)
	}

	res = r.reconcile(broken, nil, false)
	if res.Ready || !res.Stalled || res.Reason != helm.UpgradeFailedReason || res.Release.Failures != 2 || res.Release.Status != "failed" {
		t.Errorf("second failure (retries used, no remediateLastFailure): %+v", res)
	}
	res = r.reconcile(broken, nil, false)
	if !res.Stalled || res.Reason != helm.RetriesExhaustedReason || !strings.Contains(res.Message, "2 attempts at revision 1.1.0 failed") {
		t.Errorf("after the retries: %+v", res)
	}
	if got, want := statuses(r.history()), "1:superseded:1.0.0 2:failed:1.1.0 3:deployed:1.0.0 4:failed:1.1.0"; got != want {
		// Helm leaves the revision a failed upgrade started from deployed.
		t.Errorf("history %s, want %s", got, want)
	}

	t.Run("a new artifact starts the count over", func(t *testing.T) {
		r.t = t
		res := r.ready(pack(t, charts.Simple("rb", "1.2.0"), "greeting: fixed\n"), nil)
		if res.Release.Failures != 0 || res.Release.ChartVersion != "1.2.0" {
			t.Errorf("release %+v", res.Release)
		}
	})
	t.Run("remediateLastFailure rolls back the last failure too", func(t *testing.T) {
		r.t = t
		r.s.Upgrade.Remediation.Retries = 0
		r.s.Upgrade.Remediation.RemediateLastFailure = true
		res := r.reconcile(pack(t, charts.Simple("rb", "1.3.0").With(charts.Broken()), "{}"), nil, false)
		if !res.Stalled || res.Release.Status != "deployed" || res.Release.ChartVersion != "1.2.0" || !strings.Contains(res.Release.LastAction, "rolled back to revision 5") {
			t.Errorf("result %+v", res)
		}
	})
}

func TestFailedInstallRetried(t *testing.T) {
	t.Parallel()
	r := newRelease(t, "inst", true, func(s *meta.HelmReleaseSettings) { s.Install.Remediation.Retries = 1 })
	broken := pack(t, charts.Simple("inst", "1.0.0").With(charts.Broken()), "{}")
	res := r.reconcile(broken, nil, false)
	if res.Ready || !res.Retry || res.Reason != helm.InstallFailedReason || res.Release.Failures != 1 || res.Release.Status != "failed" {
		t.Errorf("first: %+v", res)
	}
	res = r.reconcile(broken, nil, false)
	if !res.Stalled || res.Release.Failures != 2 || !strings.Contains(res.Release.LastAction, "uninstalled to remove the failed install; install of 1.0.0 failed") {
		t.Errorf("second: %+v", res)
	}
	res = r.reconcile(broken, nil, false)
	if res.Reason != helm.RetriesExhaustedReason {
		t.Errorf("third: %+v", res)
	}
	res = r.ready(pack(t, charts.Simple("inst", "1.0.1"), "{}"), nil)
	if res.Release.Revision != 1 || res.Release.Failures != 0 {
		t.Errorf("a good chart after failed installs: %+v", res.Release)
	}
}

func TestTests(t *testing.T) {
	t.Parallel()
	t.Run("passing tests keep Ready", func(t *testing.T) {
		t.Parallel()
		r := newRelease(t, "pass", true, func(s *meta.HelmReleaseSettings) { s.Test.Enable = true })
		res := r.ready(pack(t, charts.Simple("pass", "1.0.0").With(charts.TestHook("Succeeded")), "{}"), nil)
		if !strings.Contains(res.Message, "tests passed") {
			t.Errorf("message %q", res.Message)
		}
	})
	t.Run("failing tests fail the install", func(t *testing.T) {
		t.Parallel()
		r := newRelease(t, "fail", true, func(s *meta.HelmReleaseSettings) { s.Test.Enable = true })
		a := pack(t, charts.Simple("fail", "1.0.0").With(charts.TestHook("Failed")), "{}")
		res := r.reconcile(a, nil, false)
		if res.Ready || !res.Stalled || res.Reason != helm.TestFailedReason || !strings.Contains(res.Message, "tests failed") || res.Release.Failures != 1 {
			t.Errorf("result %+v", res)
		}
		// Left deployed (no retries): the next reconcile still says the tests failed.
		res = r.reconcile(a, nil, false)
		if res.Ready || res.Reason != helm.TestFailedReason || !res.Deployed {
			t.Errorf("next result %+v", res)
		}
	})
	t.Run("failing tests with a retry are uninstalled and installed again", func(t *testing.T) {
		t.Parallel()
		r := newRelease(t, "failretry", true, func(s *meta.HelmReleaseSettings) {
			s.Test.Enable = true
			s.Install.Remediation.Retries = 1
		})
		a := pack(t, charts.Simple("failretry", "1.0.0").With(charts.TestHook("Failed")), "{}")
		res := r.reconcile(a, nil, false)
		if !res.Retry || !strings.Contains(res.Release.LastAction, "uninstalled to remediate the failed tests") || res.Release.Revision != 0 {
			t.Errorf("first %+v", res)
		}
		res = r.reconcile(a, nil, false)
		if !res.Stalled || res.Release.Failures != 2 || res.Release.Revision != 1 {
			t.Errorf("second %+v", res)
		}
	})
	t.Run("failing tests with ignoreFailures keep Ready and say so", func(t *testing.T) {
		t.Parallel()
		r := newRelease(t, "ignored", true, func(s *meta.HelmReleaseSettings) {
			s.Test.Enable = true
			s.Test.IgnoreFailures = true
		})
		a := pack(t, charts.Simple("ignored", "1.0.0").With(charts.TestHook("Failed")), "{}")
		res := r.ready(a, nil)
		if !strings.Contains(res.Message, "tests failed (ignored)") {
			t.Errorf("message %q", res.Message)
		}
		r.ready(a, nil)
	})
}

func TestCRDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	crd := func(group string, shortName bool) map[string]string {
		files := charts.CRD(group, "Widget", "widgets")
		if shortName {
			for k, v := range files {
				files[k] = strings.Replace(v, "singular: widget\n", "singular: widget\n    shortNames: [wd]\n", 1)
			}
		}
		return files
	}
	crdOf := func(t *testing.T, c client.Client, group string) *apiextensionsv1.CustomResourceDefinition {
		t.Helper()
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		if err := c.Get(ctx, types.NamespacedName{Name: "widgets." + group}, u); err != nil {
			t.Fatalf("CRD: %v", err)
		}
		o := &apiextensionsv1.CustomResourceDefinition{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	widget := map[string]string{"templates/widget.yaml": "apiVersion: %s/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\n"}
	for _, policy := range []string{meta.CRDsCreate, meta.CRDsCreateReplace} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			r := newRelease(t, "crd-"+strings.ToLower(policy), false, func(s *meta.HelmReleaseSettings) {
				s.Install.CRDs = policy
				s.Upgrade.CRDs = policy
			})
			group := r.ns + ".example.com"
			w := map[string]string{"templates/widget.yaml": fmt.Sprintf(widget["templates/widget.yaml"], group)}
			r.ready(pack(t, charts.Simple(r.s.ReleaseName, "1.0.0").With(crd(group, false)).With(w), "{}"), nil)
			if len(crdOf(t, r.c, group).Spec.Names.ShortNames) != 0 {
				t.Error("short names before the upgrade")
			}
			r.ready(pack(t, charts.Simple(r.s.ReleaseName, "1.1.0").With(crd(group, true)).With(w), "{}"), nil)
			replaced := len(crdOf(t, r.c, group).Spec.Names.ShortNames) == 1
			if replaced != (policy == meta.CRDsCreateReplace) {
				t.Errorf("CRD replaced on upgrade: %v", replaced)
			}
		})
	}
}

func TestPendingUpgradeRecovered(t *testing.T) {
	t.Parallel()
	r := newRelease(t, "pending", true, nil)
	ctx := context.Background()
	r.ready(pack(t, charts.Simple("pending", "1.0.0"), "greeting: one\n"), nil)
	next := pack(t, charts.Simple("pending", "1.1.0"), "greeting: two\n")

	// An agent killed during the upgrade to next leaves revision 2 pending-upgrade.
	cs, err := kubernetes.NewForConfig(r.f.cp.Config())
	if err != nil {
		t.Fatal(err)
	}
	store := storage.Init(driver.NewSecrets(cs.CoreV1().Secrets(r.ns)))
	first, err := store.Get("pending", 1)
	if err != nil {
		t.Fatal(err)
	}
	pending := *first
	pending.Version = 2
	pending.Info = &release.Info{Status: release.StatusPendingUpgrade, Description: "Preparing upgrade"}
	ch := *first.Chart
	md := *ch.Metadata
	md.Version = "1.1.0"
	md.Annotations = map[string]string{helm.DigestAnnotation: next.digest}
	ch.Metadata = &md
	pending.Chart = &ch
	if err := store.Create(&pending); err != nil {
		t.Fatal(err)
	}

	res := r.ready(next, nil)
	if !strings.Contains(res.Release.LastAction, "revision 2 was left pending-upgrade by an interrupted agent, marked failed") ||
		res.Release.ChartVersion != "1.1.0" {
		t.Errorf("release %+v", res.Release)
	}
	hist := r.history()
	if got, want := statuses(hist), "1:superseded:1.0.0 2:failed:1.1.0 3:superseded:1.0.0 4:deployed:1.1.0"; got != want {
		t.Errorf("history %s, want %s", got, want)
	}
	if d := hist[1].Info.Description; !strings.Contains(d, "interrupted") {
		t.Errorf("revision 2 description %q", d)
	}
	if got := r.configMap("pending").Data["greeting"]; got != "two" {
		t.Errorf("greeting %q", got)
	}
	_ = ctx
}

func TestDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, mode := range []string{meta.HelmDriftEnabled, meta.HelmDriftWarn} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newRelease(t, "drift-"+mode, true, func(s *meta.HelmReleaseSettings) { s.DriftDetection.Mode = mode })
			a := pack(t, charts.Simple(r.s.ReleaseName, "1.0.0"), "greeting: declared\n")
			r.ready(a, nil)
			if res := r.reconcile(a, nil, true); !res.Checked || len(res.Drifted) != 0 {
				t.Errorf("drift before any edit: %+v", res.Drifted)
			}
			cm := r.configMap(r.s.ReleaseName)
			cm.Data["greeting"] = "by hand"
			if err := r.c.Update(ctx, cm, client.FieldOwner("kubectl-edit")); err != nil {
				t.Fatal(err)
			}
			res := r.reconcile(a, nil, true)
			want := []helm.Drift{{Object: "ConfigMap/" + r.ns + "/" + r.s.ReleaseName, Fields: ".data.greeting"}}
			if fmt.Sprint(res.Drifted) != fmt.Sprint(want) || !res.Ready || res.WarnOnly != (mode == meta.HelmDriftWarn) {
				t.Errorf("drift %+v ready %v, want %+v", res.Drifted, res.Ready, want)
			}
			got := r.configMap(r.s.ReleaseName).Data["greeting"]
			if mode == meta.HelmDriftEnabled && got != "declared" {
				t.Errorf("greeting %q, want it corrected", got)
			}
			if mode == meta.HelmDriftWarn && got != "by hand" {
				t.Errorf("greeting %q, want it left as found", got)
			}
			if mode == meta.HelmDriftEnabled {
				if res := r.reconcile(a, nil, true); len(res.Drifted) != 0 {
					t.Errorf("drift after the correction: %+v", res.Drifted)
				}
				// A deleted object comes back.
				if err := r.c.Delete(ctx, cm); err != nil {
					t.Fatal(err)
				}
				res := r.reconcile(a, nil, true)
				if len(res.Drifted) != 1 || res.Drifted[0].Fields != "deleted" {
					t.Errorf("drift %+v", res.Drifted)
				}
				r.configMap(r.s.ReleaseName)
			}
		})
	}
}
