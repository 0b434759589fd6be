package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/hub/delivery/helmrelease"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/hub/notification"
	"github.com/flotilla-dev/flotilla/hub/receiver"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/spoke/apply"
	"github.com/flotilla-dev/flotilla/test/charts"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/helmrepo"
	"github.com/flotilla-dev/flotilla/test/registry"
	"github.com/flotilla-dev/flotilla/test/sshgit"
	"github.com/go-logr/logr"
	"golang.org/x/crypto/ssh/knownhosts"
)

// tenantRole stands for the admin ClusterRole: the test spokes run no
// kube-controller-manager, which is what fills the aggregated admin role on a real
// cluster.
const tenantRole = "flotilla-test-tenant"

// TestTenantEscapes runs a catalogue of escape attempts as a tenant on a real hub and
// two spokes, with the hub's default platform namespaces. Each attempt must apply
// nothing on any spoke and explain itself on the hub; the tenant's own deployment must
// still land on its clusters, in its namespaces.
func TestTenantEscapes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet := fleetenv.StartFleet(t, 2, fleetenv.With(func(o *devenv.Options) {
		o.PlatformNamespaces = []string{fleetv1.SystemNamespace}
	}))
	hub := fleet.HubClient()
	spokes := map[string]client.Client{"spoke-1": fleet.SpokeClient("spoke-1"), "spoke-2": fleet.SpokeClient("spoke-2")}
	for _, c := range spokes {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: tenantRole}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}, Verbs: []string{"*"}}}}
		if err := c.Create(ctx, role); err != nil {
			t.Fatal(err)
		}
	}
	// A server that counts what anyone asks of it: the builds and the agents must not.
	var outside atomic.Int32
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outside.Add(1)
		fmt.Fprint(w, configMap("app-a", "fetched", "x"))
	}))
	t.Cleanup(remote.Close)

	// team-a owns hub namespace team-a, reaches the dev cluster (spoke-1) and writes
	// to app-a there; team-b owns team-b and reaches both.
	for _, ns := range []string{"team-a", "team-b", "unowned"} {
		if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range []*tenancyv1.Tenant{
		{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Spec: tenancyv1.TenantSpec{Namespaces: []string{"team-a"},
			ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}, TargetNamespaces: []string{"app-a"}, Role: tenantRole}},
		{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}, Spec: tenancyv1.TenantSpec{Namespaces: []string{"team-b"},
			ClusterSelector: &metav1.LabelSelector{}, TargetNamespaces: []string{"app-b"}, Role: tenantRole}},
	} {
		if err := hub.Create(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}

	// The API server itself refuses a Tenant that would reach the system namespaces.
	bad := &tenancyv1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "greedy"}, Spec: tenancyv1.TenantSpec{
		Namespaces: []string{"greedy"}, TargetNamespaces: []string{"app-g", "kube-system"}}}
	if err := hub.Create(ctx, bad); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "kube-system") {
		t.Errorf("a Tenant targeting kube-system: %v, want Invalid", err)
	}

	// team-b's SOPS key, and its Vault token for key services, sit on spoke-1 and
	// serve team-b alone.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := spokes["spoke-1"].Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleetv1.SystemNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := spokes["spoke-1"].Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.SystemNamespace, Name: "key-b",
			Annotations: map[string]string{tenancyv1.DecryptionTenantsAnnotation: "team-b"}},
		StringData: map[string]string{"identity.agekey": id.String(), "sops.vault-token": "team-b-vault-token"},
	}); err != nil {
		t.Fatal(err)
	}

	git := gitserver.New(t)
	repo := git.CreateRepo("tenant")
	url := remote.URL + "/cm.yaml"
	repo.Write(map[string]string{
		"good/kustomization.yaml":            kustomization("cm.yaml"),
		"good/cm.yaml":                       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata:\n  value: \"ok\"\n",
		"outside/kustomization.yaml":         kustomization("cm.yaml"),
		"outside/cm.yaml":                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: outside\ndata:\n  value: \"x\"\n",
		"takeover/kustomization.yaml":        kustomization("cm.yaml"),
		"takeover/cm.yaml":                   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata:\n  value: \"taken\"\n",
		"crb/kustomization.yaml":             kustomization("crb.yaml"),
		"crb/crb.yaml":                       "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: escape\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n- kind: ServiceAccount\n  name: team-a\n  namespace: app-a\n",
		"kube-system/kustomization.yaml":     kustomization("cm.yaml"),
		"kube-system/cm.yaml":                configMap("kube-system", "escape", "x"),
		"agent-image/kustomization.yaml":     kustomization("agent.yaml"),
		"agent-image/agent.yaml":             agentDeployment("evil.example.com/flotilla-agent:v9.9.9"),
		"agent-record/kustomization.yaml":    kustomization("secret.yaml"),
		"agent-record/secret.yaml":           agentRecord(),
		"other-tenant/kustomization.yaml":    kustomization("cm.yaml"),
		"other-tenant/cm.yaml":               configMap("app-b", "escape", "x"),
		"default-ns/kustomization.yaml":      kustomization("cm.yaml"),
		"default-ns/cm.yaml":                 configMap("default", "escape", "x"),
		"sops/kustomization.yaml":            kustomization("secret.yaml"),
		"sops/secret.yaml":                   sopsEncrypt(t, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: stolen\nstringData:\n  password: hunter2\ntype: Opaque\n", id.Recipient().String()),
		"url-generator/kustomization.yaml":   "resources: [cm.yaml]\nconfigMapGenerator:\n- name: escape\n  files: [" + url + "]\n",
		"url-generator/cm.yaml":              configMap("app-a", "unused", "x"),
		"url-patch/kustomization.yaml":       "resources: [cm.yaml]\npatches:\n- path: " + url + "\n",
		"url-patch/cm.yaml":                  configMap("app-a", "unused", "x"),
		"url-transformer/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- " + url + "\n",
		"url-transformer/cm.yaml":            configMap("app-a", "unused", "x"),
	})
	for _, ns := range []string{"team-a", "team-b", "unowned"} {
		src := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant"},
			Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}}}
		if err := hub.Create(ctx, src); err != nil {
			t.Fatal(err)
		}
	}
	dev := deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}
	deploy := func(ns, name, path string, edit func(*deliveryv1.KustomizationSpec)) *deliveryv1.Kustomization {
		ks := &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: deliveryv1.KustomizationSpec{
				SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "tenant"},
				Path:      path, Prune: true, Interval: metav1.Duration{Duration: time.Hour}, Placement: dev,
			}}
		if edit != nil {
			edit(&ks.Spec)
		}
		if err := hub.Create(ctx, ks); err != nil {
			t.Fatal(err)
		}
		return ks
	}

	// The tenant's own deployment lands on its cluster, in its namespace, as itself.
	good := deploy("team-a", "good", "good", func(s *deliveryv1.KustomizationSpec) { s.TargetNamespace = "app-a" })
	spokeTarget(fleet, "spoke-1", "app-a").wantValue(t, "good", "ok")
	env.WaitReady(t, hub, good)
	var cm corev1.ConfigMap
	if err := spokes["spoke-1"].Get(ctx, types.NamespacedName{Namespace: "app-a", Name: "good"}, &cm); err != nil {
		t.Fatal(err)
	}
	if !hasManager(cm.ManagedFields, "flotilla/"+fleetv1.AssignmentName(deliveryv1.KustomizationKind, "team-a", "good")) {
		t.Errorf("ConfigMap good is not managed by its deployment's own field manager: %+v", cm.ManagedFields)
	}
	goodAsg := assignmentOf("spoke-1", "team-a", "good")
	if err := hub.Get(ctx, client.ObjectKeyFromObject(goodAsg), goodAsg); err != nil {
		t.Fatal(err)
	}
	if goodAsg.Spec.Tenant != "team-a" || goodAsg.Spec.ServiceAccountName != "team-a" || goodAsg.Spec.ServiceAccountNamespace != "app-a" {
		t.Errorf("Assignment identity %q %s/%s, want team-a's", goodAsg.Spec.Tenant, goodAsg.Spec.ServiceAccountNamespace, goodAsg.Spec.ServiceAccountName)
	}
	// The set-up reached team-a's cluster only.
	if err := spokes["spoke-2"].Get(ctx, types.NamespacedName{Name: "app-a"}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Errorf("team-a's namespace exists on spoke-2, outside its selector (err=%v)", err)
	}

	type attempt struct {
		name  string
		ks    *deliveryv1.Kustomization
		check func(t *testing.T, ks *deliveryv1.Kustomization) // the hub explains
		gone  func() error                                     // nothing applied anywhere
	}
	absent := func(ns, kind, name string) func() error {
		return func() error {
			for spoke, c := range spokes {
				var err error
				switch kind {
				case "ConfigMap":
					err = c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &corev1.ConfigMap{})
				case "Secret":
					err = c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &corev1.Secret{})
				case "ClusterRoleBinding":
					err = c.Get(ctx, types.NamespacedName{Name: name}, &rbacv1.ClusterRoleBinding{})
				}
				if !apierrors.IsNotFound(err) {
					return fmt.Errorf("%s %s/%s exists on %s (err=%v)", kind, ns, name, spoke, err)
				}
			}
			return nil
		}
	}
	refusedOnHub := func(reason string) func(*testing.T, *deliveryv1.Kustomization) {
		return func(t *testing.T, ks *deliveryv1.Kustomization) {
			env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
				st := apimeta.FindStatusCondition(k.Status.Conditions, meta.StalledCondition)
				ready := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition)
				if st == nil || st.Status != metav1.ConditionTrue || st.Reason != reason || ready == nil || ready.Status != metav1.ConditionFalse {
					return fmt.Errorf("conditions %+v, want Stalled and not Ready with %s", k.Status.Conditions, reason)
				}
				var list fleetv1.AssignmentList
				if err := hub.List(ctx, &list, client.MatchingLabels(fleetv1.OwnerLabels(deliveryv1.KustomizationKind, k.Namespace, k.Name))); err != nil {
					return err
				}
				if len(list.Items) > 0 {
					return fmt.Errorf("%d Assignments were written", len(list.Items))
				}
				return nil
			})
		}
	}
	failedWith := func(reason, words string) func(*testing.T, *deliveryv1.Kustomization) {
		return func(t *testing.T, ks *deliveryv1.Kustomization) {
			env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
				ready := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition)
				if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != reason || !strings.Contains(ready.Message, words) {
					return fmt.Errorf("Ready %+v, want False with %s naming %q", ready, reason, words)
				}
				return nil
			})
		}
	}
	attempts := []attempt{
		{name: "cluster-scoped object", ks: deploy("team-a", "crb", "crb", nil),
			check: failedWith(meta.ClustersFailedReason, "forbidden"), gone: absent("", "ClusterRoleBinding", "escape")},
		{name: "write into kube-system", ks: deploy("team-a", "kube-system", "kube-system", nil),
			check: failedWith(meta.ClustersFailedReason, "forbidden"), gone: absent("kube-system", "ConfigMap", "escape")},
		{name: "targetNamespace kube-system", ks: deploy("team-a", "target-kube-system", "good", func(s *deliveryv1.KustomizationSpec) { s.TargetNamespace = "kube-system" }),
			check: refusedOnHub(tenancyv1.TargetNamespaceNotAllowedReason), gone: absent("kube-system", "ConfigMap", "good")},
		{name: "write into another tenant's namespace", ks: deploy("team-a", "other-tenant", "other-tenant", nil),
			check: failedWith(meta.ClustersFailedReason, "forbidden"), gone: absent("app-b", "ConfigMap", "escape")},
		{name: "targetNamespace of another tenant", ks: deploy("team-a", "target-app-b", "good", func(s *deliveryv1.KustomizationSpec) { s.TargetNamespace = "app-b" }),
			check: refusedOnHub(tenancyv1.TargetNamespaceNotAllowedReason), gone: absent("app-b", "ConfigMap", "good")},
		// The agent upgrades through the AgentRollout only: a tenant cannot swap the
		// agent's image on a spoke.
		{name: "the agent's own Deployment", ks: deploy("team-a", "agent-image", "agent-image", nil),
			check: failedWith(meta.ClustersFailedReason, "forbidden"), gone: func() error {
				for spoke, c := range spokes {
					var d appsv1.Deployment
					err := c.Get(ctx, types.NamespacedName{Namespace: fleetv1.SystemNamespace, Name: "flotilla-agent"}, &d)
					if err != nil {
						return fmt.Errorf("the agent's Deployment on %s: %v", spoke, err)
					}
					if img := d.Spec.Template.Spec.Containers[0].Image; strings.Contains(img, "evil") {
						return fmt.Errorf("the agent on %s runs %s", spoke, img)
					}
				}
				return nil
			}},
		// The agent's records on a spoke list what it prunes: a tenant may not plant
		// or rewrite one (nor read them: its identity has no rights there).
		{name: "the agent's inventory record", ks: deploy("team-a", "agent-record", "agent-record", nil),
			check: failedWith(meta.ClustersFailedReason, "forbidden"), gone: absent(fleetv1.SystemNamespace, "Secret", "flotilla-state-escape")},
		{name: "write into default", ks: deploy("team-a", "default-ns", "default-ns", nil),
			check: failedWith(meta.ClustersFailedReason, "forbidden"), gone: absent("default", "ConfigMap", "escape")},
		{name: "the agent's service account", ks: deploy("team-a", "agent-sa", "other-tenant", func(s *deliveryv1.KustomizationSpec) { s.ServiceAccountName = "flotilla-agent" }),
			check: refusedOnHub(tenancyv1.ServiceAccountNotAllowedReason), gone: absent("app-b", "ConfigMap", "escape")},
		{name: "a cluster outside the tenant's selector", ks: deploy("team-a", "outside", "outside", func(s *deliveryv1.KustomizationSpec) {
			s.TargetNamespace = "app-a"
			s.Placement = deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}
		}), check: func(t *testing.T, ks *deliveryv1.Kustomization) {
			env.WaitFor(t, hub, ks, func(k *deliveryv1.Kustomization) error {
				if !apimeta.IsStatusConditionTrue(k.Status.Conditions, meta.ReadyCondition) || k.Status.Clusters.Targeted != 0 ||
					!strings.Contains(apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition).Message, "no cluster") {
					return fmt.Errorf("status %+v %+v, want ready on no cluster", k.Status.Clusters, k.Status.Conditions)
				}
				return nil
			})
		}, gone: absent("app-a", "ConfigMap", "outside")},
		{name: "another tenant's source", ks: deploy("team-a", "other-source", "good", func(s *deliveryv1.KustomizationSpec) { s.SourceRef.Namespace = "team-b" }),
			check: refusedOnHub(tenancyv1.SourceNotAllowedReason), gone: absent("app-b", "ConfigMap", "good")},
		{name: "another tenant's dependency", ks: deploy("team-a", "other-dependency", "good", func(s *deliveryv1.KustomizationSpec) {
			s.DependsOn = []deliveryv1.DependencyReference{{Namespace: "team-b", Name: "base"}}
		}), check: refusedOnHub(tenancyv1.DependencyNotAllowedReason), gone: absent("app-b", "ConfigMap", "good")},
		{name: "another tenant's key Secret", ks: deploy("team-a", "other-key", "sops", func(s *deliveryv1.KustomizationSpec) {
			s.TargetNamespace = "app-a"
			s.Decryption = &meta.Decryption{Provider: "sops", SecretRef: &meta.LocalObjectReference{Name: "key-b"}}
		}), check: failedWith(meta.ClustersFailedReason, "does not serve Tenant team-a"), gone: absent("app-a", "Secret", "stolen")},
		{name: "URL in configMapGenerator", ks: deploy("team-a", "url-generator", "url-generator", nil),
			check: failedWith(meta.BuildFailedReason, "configMapGenerator[0].files[0]"), gone: absent("app-a", "ConfigMap", "unused")},
		{name: "URL in patches", ks: deploy("team-a", "url-patch", "url-patch", nil),
			check: failedWith(meta.BuildFailedReason, "patches[0].path"), gone: absent("app-a", "ConfigMap", "unused")},
		{name: "URL in transformers", ks: deploy("team-a", "url-transformer", "url-transformer", nil),
			check: failedWith(meta.BuildFailedReason, "transformers[0]"), gone: absent("app-a", "ConfigMap", "unused")},
		{name: "a component outside the source", ks: deploy("team-a", "component-escape", "good", func(s *deliveryv1.KustomizationSpec) {
			s.TargetNamespace = "app-a"
			s.Components = []string{"../../../../etc"}
		}), check: refusedOnHub(meta.InvalidOverlayReason), gone: absent("app-a", "ConfigMap", "escape")},
		{name: "commonMetadata claiming another deployment's objects", ks: deploy("team-a", "claim", "good", func(s *deliveryv1.KustomizationSpec) {
			s.TargetNamespace = "app-a"
			s.CommonMetadata = &deliveryv1.CommonMetadata{Annotations: map[string]string{"fleet.flotilla.dev/assignment": "ks.team-b.base"}}
		}), check: refusedOnHub(meta.InvalidOverlayReason), gone: absent("app-a", "ConfigMap", "escape")},
		{name: "commonMetadata binding a token to the agent", ks: deploy("team-a", "token", "good", func(s *deliveryv1.KustomizationSpec) {
			s.TargetNamespace = "app-a"
			s.CommonMetadata = &deliveryv1.CommonMetadata{Annotations: map[string]string{"kubernetes.io/service-account.name": "flotilla-agent"}}
		}), check: refusedOnHub(meta.InvalidOverlayReason), gone: absent("app-a", "ConfigMap", "escape")},
		{name: "a patch moving an object into another tenant's namespace", ks: deploy("team-a", "patch-namespace", "good", func(s *deliveryv1.KustomizationSpec) {
			s.NamePrefix = "patched-"
			s.Patches = []deliveryv1.Patch{{Patch: `[{"op": "add", "path": "/metadata/namespace", "value": "app-b"}]`,
				Target: &deliveryv1.PatchSelector{Kind: "ConfigMap"}}}
		}), check: failedWith(meta.ClustersFailedReason, "forbidden"), gone: absent("app-b", "ConfigMap", "patched-good")},
		{name: "a deployment in a namespace no Tenant owns", ks: deploy("unowned", "platform-pretender", "good", nil),
			check: refusedOnHub(tenancyv1.NamespaceNotAllowedReason), gone: absent("default", "ConfigMap", "good")},
		{name: "a takeover of another deployment's object", ks: deploy("team-a", "takeover", "takeover", func(s *deliveryv1.KustomizationSpec) { s.TargetNamespace = "app-a" }),
			check: failedWith(meta.ClustersFailedReason, "not taken over"), gone: func() error {
				v, err := spokeTarget(fleet, "spoke-1", "app-a").value("good")
				if err != nil || v != "ok" {
					return fmt.Errorf("ConfigMap good is %q (err=%v), want the first deployment's ok", v, err)
				}
				return nil
			}},
	}

	// Forged Assignments: a hub user who may write Assignments but not the signing
	// key. Each names the agent's identity and another tenant's namespace.
	forge := func(cluster, name string, edit func(a *fleetv1.Assignment)) *fleetv1.Assignment {
		a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(cluster), Name: name}, Spec: *goodAsg.Spec.DeepCopy()}
		a.Spec.Tenant, a.Spec.ServiceAccountName, a.Spec.ServiceAccountNamespace, a.Spec.TargetNamespace = "", "", "", "app-b"
		edit(a)
		if err := hub.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	verificationFailed := func(t *testing.T, a *fleetv1.Assignment) {
		env.WaitFor(t, hub, a, func(a *fleetv1.Assignment) error {
			c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
			if c == nil || c.Reason != meta.VerificationFailedReason {
				return fmt.Errorf("Ready %+v, want VerificationFailed", c)
			}
			return nil
		})
	}
	forged := []struct {
		name string
		a    *fleetv1.Assignment
	}{
		{"an edited Assignment", forge("spoke-1", "forged-edit", func(*fleetv1.Assignment) {})},
		{"an Assignment copied to another cluster's namespace", forge("spoke-2", goodAsg.Name, func(a *fleetv1.Assignment) { a.Spec = *goodAsg.Spec.DeepCopy() })},
		// A forged agent upgrade: the hub user hands spoke-1 another artifact as the
		// agent's own Deployment. (Without an AgentRollout the hub also deletes it as
		// an Assignment whose owner is gone; the agent refuses it before that matters.)
		{"a forged agent upgrade", forge("spoke-1", "forged-agent", func(a *fleetv1.Assignment) {
			a.Spec.AgentVersion, a.Spec.Adopt = "v9.9.9", true
		})},
		{"an artifact URL on another host", forge("spoke-1", "forged-url", func(a *fleetv1.Assignment) {
			a.Spec = *goodAsg.Spec.DeepCopy()
			a.Spec.Artifact.URL = remote.URL + "/artifacts/" + a.Spec.Artifact.Digest
		})},
	}

	var made, refused int
	for _, at := range attempts {
		made++
		t.Run(at.name, func(t *testing.T) {
			at.check(t, at.ks)
			if err := at.gone(); err != nil {
				t.Fatal(err)
			}
			refused++
		})
	}
	for _, f := range forged {
		made++
		t.Run(f.name, func(t *testing.T) {
			verificationFailed(t, f.a)
			if err := absent("app-b", "ConfigMap", "good")(); err != nil {
				t.Fatal(err)
			}
			refused++
		})
	}
	made++
	t.Run("a GitRepository that includes another tenant's repository", func(t *testing.T) {
		// team-b's repository, fetched and ready.
		theirs := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "team-b-only"},
			Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}}}
		if err := hub.Create(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		env.WaitFor(t, hub, theirs, func(g *sourcev1.GitRepository) error {
			if g.Status.Artifact == nil {
				return fmt.Errorf("no artifact yet: %+v", g.Status.Conditions)
			}
			return nil
		})
		// team-a names it with a namespace, a field spec.include does not have: the
		// API server drops it, and the name is looked up in team-a's namespace only.
		steal := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": sourcev1.GroupVersion.String(), "kind": sourcev1.GitRepositoryKind,
			"metadata": map[string]any{"namespace": "team-a", "name": "steal"},
			"spec": map[string]any{"url": repo.URL(), "interval": "1h",
				"include": []any{map[string]any{"repository": map[string]any{"name": "team-b-only", "namespace": "team-b"}}}},
		}}
		if err := hub.Create(ctx, steal); err != nil {
			t.Fatal(err)
		}
		gr := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "steal"}}
		env.WaitFor(t, hub, gr, func(g *sourcev1.GitRepository) error {
			ready := apimeta.FindStatusCondition(g.Status.Conditions, meta.ReadyCondition)
			if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != sourcev1.IncludeUnavailableReason ||
				!strings.Contains(ready.Message, "team-b-only not found in namespace team-a") {
				return fmt.Errorf("Ready %+v, want False with %s", ready, sourcev1.IncludeUnavailableReason)
			}
			if g.Status.Artifact != nil || len(g.Status.IncludedArtifacts) != 0 {
				return fmt.Errorf("an artifact was stored: %+v %+v", g.Status.Artifact, g.Status.IncludedArtifacts)
			}
			return nil
		})
		refused++
	})
	// A tenant's Receiver reaches its own namespace only: one naming team-b's
	// GitRepository gets no path, and a correctly signed call to the path its token
	// would give finds nothing and asks team-b's source for nothing.
	made++
	t.Run("a Receiver naming another tenant's source", func(t *testing.T) {
		const token = "team-a-hook"
		if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"},
			StringData: map[string]string{notificationv1.TokenKey: token}}); err != nil {
			t.Fatal(err)
		}
		rcv := &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "escape"},
			Spec: notificationv1.ReceiverSpec{Type: notificationv1.GitHubReceiver, SecretRef: meta.LocalObjectReference{Name: "hook"},
				Resources: []notificationv1.ReceiverResource{{Kind: sourcev1.GitRepositoryKind, Name: "tenant", Namespace: "team-b"}}}}
		if err := hub.Create(ctx, rcv); err != nil {
			t.Fatal(err)
		}
		env.WaitFor(t, hub, rcv, func(r *notificationv1.Receiver) error {
			st := apimeta.FindStatusCondition(r.Status.Conditions, meta.StalledCondition)
			ready := apimeta.FindStatusCondition(r.Status.Conditions, meta.ReadyCondition)
			if st == nil || st.Reason != notificationv1.ResourceNotAllowedReason || !strings.Contains(st.Message, "team-b") ||
				ready == nil || ready.Status != metav1.ConditionFalse || r.Status.WebhookPath != "" {
				return fmt.Errorf("status %+v, want Stalled with %s and no path", r.Status, notificationv1.ResourceNotAllowedReason)
			}
			return nil
		})
		body := []byte(`{"ref":"refs/heads/main"}`)
		url := fleet.HubInstance().ArtifactBaseURL() + receiver.WebhookPath(token, rcv.Name, rcv.Namespace)
		if code := githubPush(t, hookClient(t, fleet.HubInstance().ArtifactCA()), url, body, receiver.Sign("sha256", token, body)); code != http.StatusNotFound {
			t.Errorf("a signed call to the Receiver's would-be path: %d, want 404", code)
		}
		var theirs sourcev1.GitRepository
		if err := hub.Get(ctx, types.NamespacedName{Namespace: "team-b", Name: "tenant"}, &theirs); err != nil {
			t.Fatal(err)
		}
		if v, ok := theirs.Annotations[meta.ReconcileRequestedAtAnnotation]; ok {
			t.Fatalf("team-b's GitRepository was asked to reconcile (%q) by team-a's Receiver", v)
		}
		refused++
	})
	if n := outside.Load(); n != 0 {
		t.Errorf("the remote server was asked %d times", n)
	}
	// The first deployment still runs untouched after all of it.
	spokeTarget(fleet, "spoke-1", "app-a").wantValue(t, "good", "ok")
	if err := spokes["spoke-1"].Get(ctx, types.NamespacedName{Namespace: "app-a", Name: "good"}, &cm); err != nil || cm.Annotations[apply.AssignmentAnnotation] != goodAsg.Namespace+"/"+goodAsg.Name {
		t.Errorf("ConfigMap good's owner is %q (err=%v)", cm.Annotations[apply.AssignmentAnnotation], err)
	}
	t.Run("a tenant's set-up follows its clusterSelector", func(t *testing.T) {
		tb := &tenancyv1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}}
		env.WaitFor(t, hub, tb, func(tn *tenancyv1.Tenant) error {
			if tn.Status.Clusters.Total != 2 || tn.Status.Clusters.Ready != 2 || !apimeta.IsStatusConditionTrue(tn.Status.Conditions, meta.ReadyCondition) {
				return fmt.Errorf("status %+v", tn.Status)
			}
			return nil
		})
		sa := func(spoke string) error {
			return spokes[spoke].Get(ctx, types.NamespacedName{Namespace: "app-b", Name: "team-b"}, &corev1.ServiceAccount{})
		}
		for _, spoke := range []string{"spoke-1", "spoke-2"} {
			if err := sa(spoke); err != nil {
				t.Fatalf("team-b's identity on %s: %v", spoke, err)
			}
		}
		patch := client.MergeFrom(tb.DeepCopy())
		tb.Spec.ClusterSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}
		if err := hub.Patch(ctx, tb, patch); err != nil {
			t.Fatal(err)
		}
		env.Eventually(t, "team-b's identity pruned from spoke-2", func() error {
			if err := sa("spoke-2"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (err=%v)", err)
			}
			return nil
		})
		if err := sa("spoke-1"); err != nil {
			t.Errorf("team-b's identity left spoke-1 too: %v", err)
		}
		env.WaitFor(t, hub, tb, func(tn *tenancyv1.Tenant) error {
			if tn.Status.Clusters.Total != 1 || tn.Status.Clusters.Ready != 1 {
				return fmt.Errorf("clusters %+v, want 1 of 1", tn.Status.Clusters)
			}
			return nil
		})
	})
	t.Run("a tenant's HelmReleases run as the tenant", func(t *testing.T) {
		charts1 := helmrepo.New(t)
		charts1.Add(charts.Simple("hello", "1.0.0"))
		charts1.Add(charts.Simple("escape", "1.0.0").With(map[string]string{"templates/crb.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: helm-escape\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n- kind: ServiceAccount\n  name: team-a\n  namespace: app-a\n"}))
		if err := hub.Create(ctx, helmRepository("team-a", "charts", charts1.URL(), "")); err != nil {
			t.Fatal(err)
		}
		release := func(name, chart string, edit func(*deliveryv1.HelmReleaseSpec)) *deliveryv1.HelmRelease {
			hr := &deliveryv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name},
				Spec: deliveryv1.HelmReleaseSpec{
					Chart: deliveryv1.HelmChartTemplate{Chart: chart,
						SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}},
					ReleaseName: name, TargetNamespace: "app-a", Interval: metav1.Duration{Duration: time.Hour}, Placement: dev,
				}}
			if edit != nil {
				edit(&hr.Spec)
			}
			if err := hub.Create(ctx, hr); err != nil {
				t.Fatal(err)
			}
			return hr
		}
		own := release("hello", "hello", nil)
		escape := release("escape", "escape", nil)
		storage := release("storage", "hello", func(s *deliveryv1.HelmReleaseSpec) { s.StorageNamespace = "kube-system" })

		env.WaitReady(t, hub, own)
		wantLast(t, helmOn(t, fleet, "spoke-1", "app-a"), "spoke-1", "hello", "1.0.0")
		a := helmReleaseAssignment("spoke-1", "team-a", "hello")
		if err := hub.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			t.Fatal(err)
		}
		if a.Spec.Tenant != "team-a" || a.Spec.ServiceAccountName != "team-a" {
			t.Errorf("the HelmRelease's Assignment runs as %q of %q, want team-a's identity", a.Spec.ServiceAccountName, a.Spec.Tenant)
		}

		made++
		env.WaitFor(t, hub, escape, func(h *deliveryv1.HelmRelease) error {
			if h.Status.Clusters.Failed != 1 || len(h.Status.Failures) != 1 || !strings.Contains(h.Status.Failures[0].Message, "forbidden") {
				return fmt.Errorf("status %+v %+v, want the spoke's refusal", h.Status.Clusters, h.Status.Failures)
			}
			return nil
		})
		if err := absent("", "ClusterRoleBinding", "helm-escape")(); err != nil {
			t.Fatal(err)
		}
		refused++

		made++
		env.WaitFor(t, hub, storage, func(h *deliveryv1.HelmRelease) error {
			st := apimeta.FindStatusCondition(h.Status.Conditions, meta.StalledCondition)
			if st == nil || st.Reason != tenancyv1.TargetNamespaceNotAllowedReason || !strings.Contains(st.Message, "kube-system") {
				return fmt.Errorf("conditions %+v, want Stalled with %s", h.Status.Conditions, tenancyv1.TargetNamespaceNotAllowedReason)
			}
			return nil
		})
		if err := absent("kube-system", "Secret", "sh.helm.release.v1.storage.v1")(); err != nil {
			t.Fatal(err)
		}
		refused++

		// The other fields of a HelmRelease that name a namespace, an identity or a
		// Secret: each is held to the tenant's own, on the hub, before anything is read.
		if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "values-b"},
			StringData: map[string]string{"values.yaml": "greeting: stolen\n"}}); err != nil {
			t.Fatal(err)
		}
		if err := hub.Create(ctx, helmRepository("team-b", "charts-b", charts1.URL(), "")); err != nil {
			t.Fatal(err)
		}
		assignments := func(h *deliveryv1.HelmRelease) error {
			var list fleetv1.AssignmentList
			if err := hub.List(ctx, &list, client.MatchingLabels(fleetv1.OwnerLabels(deliveryv1.HelmReleaseKind, h.Namespace, h.Name))); err != nil {
				return err
			}
			if len(list.Items) > 0 {
				return fmt.Errorf("%d Assignments were written", len(list.Items))
			}
			return nil
		}
		for _, at := range []struct {
			name, reason, words string
			edit                func(*deliveryv1.HelmReleaseSpec)
		}{
			{"target-app-b", tenancyv1.TargetNamespaceNotAllowedReason, "app-b", func(s *deliveryv1.HelmReleaseSpec) { s.TargetNamespace = "app-b" }},
			{"source-team-b", tenancyv1.SourceNotAllowedReason, "team-b/charts-b", func(s *deliveryv1.HelmReleaseSpec) {
				s.Chart.SourceRef = deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts-b", Namespace: "team-b"}
			}},
			{"agent-sa", tenancyv1.ServiceAccountNotAllowedReason, "flotilla-agent", func(s *deliveryv1.HelmReleaseSpec) { s.ServiceAccountName = "flotilla-agent" }},
			{"dependency-team-b", tenancyv1.DependencyNotAllowedReason, "team-b", func(s *deliveryv1.HelmReleaseSpec) {
				s.DependsOn = []deliveryv1.DependencyReference{{Namespace: "team-b", Name: "base"}}
			}},
			// valuesFrom has no namespace: a name is looked up in the release's own
			// namespace only, so team-b's Secret of that name is never read.
			{"values-team-b", helmrelease.ValuesNotFoundReason, "values-b", func(s *deliveryv1.HelmReleaseSpec) {
				s.ValuesFrom = []deliveryv1.ValuesReference{{Kind: "Secret", Name: "values-b"}}
			}},
		} {
			made++
			hr := release(at.name, "hello", at.edit)
			env.WaitFor(t, hub, hr, func(h *deliveryv1.HelmRelease) error {
				ready := apimeta.FindStatusCondition(h.Status.Conditions, meta.ReadyCondition)
				if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != at.reason || !strings.Contains(ready.Message, at.words) {
					return fmt.Errorf("%s: Ready %+v, want False with %s naming %q", at.name, ready, at.reason, at.words)
				}
				return assignments(h)
			})
			if err := absent("app-b", "ConfigMap", at.name)(); err != nil {
				t.Fatal(err)
			}
			refused++
		}
	})
	t.Run("a tenant's Alerts and Providers see only its own namespaces", func(t *testing.T) {
		var mu sync.Mutex
		var leaked []string
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var p struct {
				InvolvedObject struct{ Namespace string } `json:"involvedObject"`
			}
			_ = json.NewDecoder(r.Body).Decode(&p)
			if p.InvolvedObject.Namespace != "team-a" {
				mu.Lock()
				leaked = append(leaked, p.InvolvedObject.Namespace)
				mu.Unlock()
			}
		}))
		t.Cleanup(hook.Close)
		if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "hook-b"},
			StringData: map[string]string{"address": hook.URL, "token": "team-b's"}}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*notificationv1.Provider{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook"}, Spec: notificationv1.ProviderSpec{Type: notificationv1.GenericProvider, Address: hook.URL}},
			// A Secret is looked up in the Provider's own namespace only: team-b's of that name is never read.
			{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "steal-secret"}, Spec: notificationv1.ProviderSpec{Type: notificationv1.GenericProvider,
				SecretRef: &meta.LocalObjectReference{Name: "hook-b"}}},
		} {
			if err := hub.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		made++
		env.WaitFor(t, hub, &notificationv1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "steal-secret"}}, func(p *notificationv1.Provider) error {
			st := apimeta.FindStatusCondition(p.Status.Conditions, meta.StalledCondition)
			if st == nil || st.Reason != notificationv1.SecretNotFoundReason || !strings.Contains(st.Message, "namespace team-a") {
				return fmt.Errorf("conditions %+v, want Stalled with %s in team-a", p.Status.Conditions, notificationv1.SecretNotFoundReason)
			}
			return nil
		})
		refused++
		source := func(ns string) []notificationv1.EventSource {
			return []notificationv1.EventSource{{Kind: deliveryv1.KustomizationKind, Name: "*", Namespace: ns}}
		}
		for _, at := range []struct {
			name, ns, reason string
			sources          []notificationv1.EventSource
		}{
			{"watch-team-b", "team-a", notificationv1.InvalidEventSourceReason, source("team-b")},
			{"watch-system", "team-a", notificationv1.InvalidEventSourceReason, source(fleetv1.SystemNamespace)},
			{"watch-team-b-sources", "team-a", notificationv1.InvalidEventSourceReason, []notificationv1.EventSource{
				{Kind: deliveryv1.KustomizationKind, Name: "*"}, {Kind: sourcev1.GitRepositoryKind, Name: "*", Namespace: "team-b"}}},
			{"unowned", "unowned", tenancyv1.NamespaceNotAllowedReason, source("team-b")},
		} {
			made++
			if at.ns == "unowned" {
				if err := hub.Create(ctx, &notificationv1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: "unowned", Name: "hook"},
					Spec: notificationv1.ProviderSpec{Type: notificationv1.GenericProvider, Address: hook.URL}}); err != nil {
					t.Fatal(err)
				}
			}
			a := &notificationv1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: at.ns, Name: at.name}, Spec: notificationv1.AlertSpec{
				ProviderRef: meta.LocalObjectReference{Name: "hook"}, EventSources: at.sources}}
			if err := hub.Create(ctx, a); err != nil {
				t.Fatal(err)
			}
			env.WaitFor(t, hub, a, func(a *notificationv1.Alert) error {
				st := apimeta.FindStatusCondition(a.Status.Conditions, meta.StalledCondition)
				if st == nil || st.Reason != at.reason || apimeta.IsStatusConditionTrue(a.Status.Conditions, meta.ReadyCondition) {
					return fmt.Errorf("%s: conditions %+v, want Ready=False and Stalled with %s", at.name, a.Status.Conditions, at.reason)
				}
				return nil
			})
			refused++
		}
		// Nothing of team-b reaches team-a's webhook: a team-b deployment that fails
		// (its source is missing) makes Warning events and a failed status.
		noisy := &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "noisy"}, Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "missing"}, Path: ".",
			Interval: metav1.Duration{Duration: time.Hour}, Placement: byName("spoke-1")}}
		if err := hub.Create(ctx, noisy); err != nil {
			t.Fatal(err)
		}
		env.WaitForCondition(t, hub, noisy, meta.ReadyCondition, metav1.ConditionFalse)
		time.Sleep(3 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		if len(leaked) > 0 {
			t.Errorf("team-a's webhook was sent events of namespaces %v", leaked)
		}
	})
	made++
	t.Run("another cluster's artifact URL, or a forged download grant", func(t *testing.T) {
		// team-a's set-up Assignment reaches spoke-1 only; its URL carries spoke-1's grant.
		setup := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("spoke-1"),
			Name: fleetv1.AssignmentName(tenancyv1.TenantKind, "", "team-a")}}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(setup), setup); err != nil {
			t.Fatal(err)
		}
		url := setup.Spec.Artifact.URL
		if !strings.Contains(url, "?"+storage.GrantParam+"=") {
			t.Fatalf("artifact URL %s carries no download grant", url)
		}
		ca := fleet.HubInstance().ArtifactCA()
		own, other := credential(t, fleet, "spoke-1").Token, credential(t, fleet, "spoke-2").Token
		if code := getArtifact(t, ca, url, own); code != http.StatusOK {
			t.Fatalf("spoke-1's own granted download: got %d, want 200", code)
		}
		// A grant-shaped value (version 1, 128 bits) that no hub key made.
		forged := storage.GrantedURL(url, base64.RawURLEncoding.EncodeToString(append([]byte{1}, bytes.Repeat([]byte{0x5a}, 16)...)))
		unassigned := strings.Replace(url, strings.TrimPrefix(setup.Spec.Artifact.Digest, "sha256:"), strings.Repeat("ab", 32), 1)
		for _, try := range []struct{ name, url, token string }{
			{"spoke-1's URL with spoke-2's credential", url, other},
			{"a forged grant with spoke-2's credential", forged, other},
			{"spoke-1's grant on a digest assigned to no one", unassigned, own},
		} {
			if code := getArtifact(t, ca, try.url, try.token); code != http.StatusForbidden {
				t.Errorf("%s: got %d, want 403", try.name, code)
				return
			}
		}
		// A hub user copies spoke-1's Assignment into spoke-2's namespace and asks for
		// its artifact with spoke-2's credential and no grant: the lookup finds the
		// copy, whose signature is spoke-1's, and must not count it. The hub deletes
		// such a copy soon; an answer is only conclusive while the copy is still there.
		bare, _, _ := strings.Cut(url, "?")
		for i := 0; ; i++ {
			copied := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("spoke-2"),
				Name: fmt.Sprintf("copied-%d", i)}, Spec: *setup.Spec.DeepCopy()}
			if err := hub.Create(ctx, copied); err != nil {
				t.Fatal(err)
			}
			code := getArtifact(t, ca, bare, other)
			still := hub.Get(ctx, client.ObjectKeyFromObject(copied), copied) == nil && copied.DeletionTimestamp == nil
			_ = hub.Delete(ctx, copied)
			if still && code != http.StatusForbidden {
				t.Errorf("spoke-2 asking for an artifact named by a copied Assignment: got %d, want 403", code)
				return
			}
			if still {
				break
			}
			if i == 4 {
				t.Fatal("the copied Assignment was deleted before every check; inconclusive")
			}
		}
		refused++
	})
	t.Logf("tenancy: %d escape attempts, %d refused", made, refused)
	fmt.Printf("tenancy: %d escape attempts, %d refused\n", made, refused)
	if refused != made {
		t.Errorf("%d of %d escape attempts were not refused", made-refused, made)
	}
}

// agentRecord is a record of the agent's (spoke/agent's state Secret) as a tenant
// might plant one, listing an object of another tenant to have it pruned.
func agentRecord() string {
	return `apiVersion: v1
kind: Secret
metadata:
  name: flotilla-state-escape
  namespace: flotilla-system
  labels: {` + agent.StateLabel + `: spoke-1}
stringData:
  assignment.json: '{"namespace":"flotilla-cluster-spoke-1","name":"ks.team-b.tenant","entries":[{"id":"app-b_good__ConfigMap","v":"v1"}]}'
`
}

// agentDeployment is the agent's Deployment as a tenant might write it to swap the image.
func agentDeployment(image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: flotilla-agent
  namespace: flotilla-system
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: flotilla-agent}
  template:
    metadata:
      labels: {app.kubernetes.io/name: flotilla-agent}
    spec:
      containers:
      - name: agent
        image: %s
`, image)
}

// TestTenantEgress runs escape attempts against the hub's network position: a
// tenant's sources and Providers pointing the hub at loopback (its own ports, the
// test servers on this machine), on a hub with the default egress policy, which
// allows none of loopback, link-local or private addresses. Each attempt must be
// refused before anything connects (the servers sit behind fronts that count
// connections), with EgressNotAllowed naming the host, the address and the rule, and
// a Warning Event. The same URLs work from a platform namespace, and, once the hub
// allows loopback (--tenant-egress-allow), from the tenant's too.
func TestTenantEgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cp := env.StartControlPlane(t, "egress-hub", true)
	hub := cp.Client()
	startHub := func(allow []netip.Prefix) (stop func()) {
		hctx, cancel := context.WithCancel(logr.NewContext(ctx, env.Log().WithName("egress-hub")))
		h, err := manager.Start(hctx, manager.Options{Config: cp.Config(), StorageDir: t.TempDir(), ArtifactAddr: "127.0.0.1:0",
			HealthAddr: "0", MetricsAddr: "0", GCInterval: -1, PlatformNamespaces: []string{"*"}, TenantEgressAllow: allow})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var once sync.Once
		stop = func() { once.Do(func() { cancel(); <-h.Done() }) }
		t.Cleanup(stop)
		return stop
	}
	stopFirst := startHub(nil) // the default: no network allowed besides public ones

	const team, platform = "egress-team", "egress-platform"
	for _, ns := range []string{team, platform} {
		if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := hub.Create(ctx, &tenancyv1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: team},
		Spec: tenancyv1.TenantSpec{Namespaces: []string{team}, TargetNamespaces: []string{"egress-app"},
			ClusterSelector: &metav1.LabelSelector{}}}); err != nil { // every cluster: this hub has none
		t.Fatal(err)
	}

	// Real servers on 127.0.0.1, each behind a front that counts connections.
	git := gitserver.New(t)
	repo := git.CreateRepo("egress")
	repo.Write(map[string]string{"cm.yaml": configMap("egress-app", "cm", "x")})
	gitFront, gitConns := countingFront(t, strings.TrimPrefix(git.URL(), "http://"))
	gitURL := "http://" + gitFront + "/egress.git"
	_, gitPort, _ := net.SplitHostPort(gitFront)

	ssh := sshgit.New(t, git.Root())
	key, pub := sshgit.NewClientKey(t)
	ssh.Authorize(pub)
	sshFront, sshConns := countingFront(t, ssh.Addr())

	charts := helmrepo.New(t)
	charts.AddChart("app", "1.0.0")
	chartsFront, chartsConns := countingFront(t, strings.TrimPrefix(charts.URL(), "http://"))

	reg := registry.New(t)
	reg.Push("apps/web", "1.0.0", map[string]string{"cm.yaml": configMap("egress-app", "cm", "x")})
	regFront, regConns := countingFront(t, reg.Host())

	var webhookHits atomic.Int32
	webhook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		webhookHits.Add(1)
	}))
	t.Cleanup(webhook.Close)
	hookFront, hookConns := countingFront(t, strings.TrimPrefix(webhook.URL, "http://"))
	proxyFront, proxyConns := countingFront(t, strings.TrimPrefix(webhook.URL, "http://"))

	if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "ssh"},
		Data: map[string][]byte{"identity": key, "known_hosts": []byte(knownhosts.Line([]string{knownhosts.Normalize(sshFront)}, ssh.HostPublicKey()) + "\n")}}); err != nil {
		t.Fatal(err)
	}
	gitRepo := func(ns, name, url string, secret string) *sourcev1.GitRepository {
		g := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: sourcev1.GitRepositorySpec{URL: url, Interval: metav1.Duration{Duration: time.Hour}}}
		if secret != "" {
			g.Spec.SecretRef = &meta.LocalObjectReference{Name: secret}
		}
		return g
	}
	helmRepo := func(ns string) *sourcev1.HelmRepository {
		return &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "charts"},
			Spec: sourcev1.HelmRepositorySpec{URL: "http://" + chartsFront, Interval: metav1.Duration{Duration: time.Hour}}}
	}
	ociRepo := func(ns string) *sourcev1.OCIRepository {
		return &sourcev1.OCIRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: sourcev1.OCIRepositorySpec{URL: "oci://" + regFront + "/apps/web", Ref: &sourcev1.OCIRepositoryRef{Tag: "1.0.0"},
				Insecure: true, Interval: metav1.Duration{Duration: time.Hour}}}
	}
	// Each Provider has an Alert on its namespace's GitRepositories: the refusals'
	// Warning Events are messages it is asked to send.
	notify := func(ns, name string, spec notificationv1.ProviderSpec) *notificationv1.Provider {
		p := provider(ns, name, spec)
		if err := hub.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := hub.Create(ctx, alert(ns, name, func(s *notificationv1.AlertSpec) {
			s.EventSources = []notificationv1.EventSource{{Kind: sourcev1.GitRepositoryKind, Name: "*"}}
		})); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The Providers first, so that their Alerts see the sources' Events.
	attempts := []struct {
		name  string
		obj   env.ConditionedObject
		words []string      // the message names them
		conns *atomic.Int32 // nothing connected here
	}{
		{"a webhook Provider on loopback", notify(team, "hook", notificationv1.ProviderSpec{Type: notificationv1.GenericProvider,
			Address: "http://" + hookFront + "/hook"}), []string{hookFront, "loopback"}, hookConns},
		{"a Provider whose proxy is on loopback", notify(team, "proxied", notificationv1.ProviderSpec{Type: notificationv1.GenericProvider,
			Address: "http://hooks.example.com/hook", Proxy: "http://" + proxyFront}), []string{proxyFront, "loopback"}, proxyConns},
		{"a GitRepository over http on loopback", gitRepo(team, "http", gitURL, ""), []string{gitFront, "127.0.0.1", "loopback"}, gitConns},
		{"a GitRepository on a name that resolves to loopback", gitRepo(team, "localhost", "http://localhost:"+gitPort+"/egress.git", ""),
			[]string{"localhost:" + gitPort, "loopback"}, gitConns},
		{"a GitRepository over ssh on loopback", gitRepo(team, "ssh", "ssh://git@"+sshFront+"/egress.git", "ssh"), []string{sshFront, "loopback"}, sshConns},
		{"a GitRepository on the hub's own disk", gitRepo(team, "file", "file://"+repo.Path(), ""), []string{"file://", "hub's own disk"}, nil},
		{"a HelmRepository on loopback", helmRepo(team), []string{chartsFront, "loopback"}, chartsConns},
		{"an OCIRepository on a loopback registry", ociRepo(team), []string{regFront, "loopback"}, regConns},
	}
	failedBefore := failedGeneric(t)
	for _, at := range attempts[2:] {
		if err := hub.Create(ctx, at.obj); err != nil {
			t.Fatal(err)
		}
	}

	var made, refused int
	for _, at := range attempts {
		made++
		t.Run(at.name, func(t *testing.T) {
			egressRefused(t, hub, at.obj, at.words)
			refused++
		})
	}
	// The refusals above are Warning Events that the tenant's Alerts route to its two
	// Providers: wait until the Dispatcher has given up on at least two messages (a
	// refused send is final), then nothing may have reached any server.
	env.Eventually(t, "the tenant's messages refused", func() error {
		if n := failedGeneric(t) - failedBefore; n < 2 {
			return fmt.Errorf("%v generic messages failed so far", n)
		}
		return nil
	})
	for _, at := range attempts {
		if at.conns != nil && at.conns.Load() != 0 {
			t.Errorf("%s: %d connections reached the server", at.name, at.conns.Load())
		}
	}
	if n := webhookHits.Load(); n != 0 {
		t.Errorf("the webhook received %d requests", n)
	}
	t.Logf("egress: %d escape attempts, %d refused", made, refused)
	fmt.Printf("egress: %d escape attempts, %d refused\n", made, refused)
	if made != refused {
		t.Errorf("%d of %d egress attempts were not refused", made-refused, made)
	}

	// The same URLs from a platform namespace: fetched, and the platform's Provider
	// posts the new artifact to the same webhook. The fronts were reachable all along.
	notify(platform, "hook", notificationv1.ProviderSpec{Type: notificationv1.GenericProvider, Address: "http://" + hookFront + "/hook"})
	for _, o := range []env.ConditionedObject{gitRepo(platform, "http", gitURL, ""), helmRepo(platform), ociRepo(platform)} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		env.WaitReady(t, hub, o)
	}
	env.Eventually(t, "the platform's webhook message", func() error {
		if webhookHits.Load() == 0 || hookConns.Load() == 0 {
			return fmt.Errorf("the webhook received nothing yet")
		}
		return nil
	})
	for name, n := range map[string]*atomic.Int32{"git": gitConns, "helm": chartsConns, "registry": regConns} {
		if n.Load() == 0 {
			t.Errorf("the platform's %s fetch did not go through its front", name)
		}
	}

	// The hub restarted with loopback allowed: the tenant's GitRepository is fetched.
	stopFirst()
	stopSecond := startHub(fleetenv.Loopback)
	env.WaitReady(t, hub, attempts[2].obj)

	// A chart URL is held to the rule too, not only the index. The hub now allows
	// 127.0.0.1 only; the tenant's repository index is there, but it names the chart
	// at 127.0.0.2. The HelmRelease is refused as the sources are, and nothing
	// connects to the chart's address.
	stopSecond()
	startHub([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	elsewhere := helmrepo.New(t)
	elsewhere.AddChart("app", "1.0.0")
	chartFront, chartConns := countingFrontOn(t, "127.0.0.2", strings.TrimPrefix(elsewhere.URL(), "http://"))
	resp, err := http.Get(elsewhere.URL() + "/index.yaml")
	if err != nil {
		t.Fatal(err)
	}
	index, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	elsewhere.WriteIndex([]byte(strings.ReplaceAll(string(index), elsewhere.URL(), "http://"+chartFront)))
	indexFront, _ := countingFront(t, strings.TrimPrefix(elsewhere.URL(), "http://"))
	indexRepo := &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "elsewhere"},
		Spec: sourcev1.HelmRepositorySpec{URL: "http://" + indexFront, Interval: metav1.Duration{Duration: time.Hour}}}
	if err := hub.Create(ctx, indexRepo); err != nil {
		t.Fatal(err)
	}
	env.WaitReady(t, hub, indexRepo)
	hr := &deliveryv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "app"},
		Spec: deliveryv1.HelmReleaseSpec{
			Chart: deliveryv1.HelmChartTemplate{Chart: "app", Version: "1.0.0",
				SourceRef: deliveryv1.ChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "elsewhere"}},
			TargetNamespace: "egress-app", Interval: metav1.Duration{Duration: time.Hour}}}
	if err := hub.Create(ctx, hr); err != nil {
		t.Fatal(err)
	}
	egressRefused(t, hub, hr, []string{chartFront, "loopback"})
	if n := chartConns.Load(); n != 0 {
		t.Errorf("the chart's address received %d connections", n)
	}
}

// egressRefused waits until obj is Ready=False and Stalled with EgressNotAllowed, its
// message naming every one of words, and a Warning Event says so.
func egressRefused(t *testing.T, hub client.Client, obj env.ConditionedObject, words []string) {
	t.Helper()
	env.WaitFor(t, hub, obj, func(o env.ConditionedObject) error {
		ready := apimeta.FindStatusCondition(o.GetConditions(), meta.ReadyCondition)
		stalled := apimeta.FindStatusCondition(o.GetConditions(), meta.StalledCondition)
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != tenancyv1.EgressNotAllowedReason ||
			stalled == nil || stalled.Status != metav1.ConditionTrue {
			return fmt.Errorf("conditions %+v, want Ready=False and Stalled with %s", o.GetConditions(), tenancyv1.EgressNotAllowedReason)
		}
		for _, w := range words {
			if !strings.Contains(ready.Message, w) {
				return fmt.Errorf("message %q does not name %q", ready.Message, w)
			}
		}
		return nil
	})
	env.Eventually(t, "a Warning Event EgressNotAllowed", func() error {
		var list eventsv1.EventList
		if err := hub.List(context.Background(), &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		for _, ev := range list.Items {
			if ev.Regarding.Name == obj.GetName() && ev.Type == corev1.EventTypeWarning && ev.Reason == tenancyv1.EgressNotAllowedReason {
				return nil
			}
		}
		return fmt.Errorf("no Warning Event %s about %s among %d", tenancyv1.EgressNotAllowedReason, obj.GetName(), len(list.Items))
	})
}

// failedGeneric reads flotilla_notification_messages_total{type="generic",
// result="failed"} of this process, where the test's hubs run.
func failedGeneric(t *testing.T) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != notification.MessagesName {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == notificationv1.GenericProvider && labels["result"] == "failed" {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// countingFront listens on 127.0.0.1 and relays each connection to target, counting
// the connections it accepts.
func countingFront(t *testing.T, target string) (string, *atomic.Int32) {
	t.Helper()
	return countingFrontOn(t, "127.0.0.1", target)
}

// countingFrontOn is countingFront listening on host (another loopback address).
func countingFrontOn(t *testing.T, host, target string) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var n atomic.Int32
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); _ = out.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return l.Addr().String(), &n
}
