package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	sopsaes "github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/hcvault"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/kustomize"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// sopsEncrypt encrypts a Secret manifest for one age recipient as
// `sops --encrypt --age R --encrypted-regex '^(data|stringData)$'` does.
func sopsEncrypt(t *testing.T, plain, recipient string) string {
	t.Helper()
	store := sopsyaml.NewStore(&config.YAMLStoreConfig{})
	branches, err := store.LoadPlainFile([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	key, err := sopsage.MasterKeyFromRecipient(recipient)
	if err != nil {
		t.Fatal(err)
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups: []sops.KeyGroup{{key}}, EncryptedRegex: "^(data|stringData)$", Version: "3.13.3",
	}}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		t.Fatal(err)
	}
	if err := key.Encrypt(dataKey); err != nil {
		t.Fatal(err)
	}
	cipher := sopsaes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		t.Fatal(err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// sopsEncryptVault encrypts a Secret manifest for a HashiCorp Vault transit key
// alone, as `sops --hc-vault-transit <address>/v1/transit/keys/apps` does. No Vault
// is asked: the data key's "ciphertext" is made up, which is all a test of an agent
// without key services needs (it must refuse before calling any service).
func sopsEncryptVault(t *testing.T, plain, address string) string {
	t.Helper()
	store := sopsyaml.NewStore(&config.YAMLStoreConfig{})
	branches, err := store.LoadPlainFile([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	key := hcvault.NewMasterKey(address, "transit", "apps")
	key.EncryptedKey = "vault:v1:bm90LWEtcmVhbC1jaXBoZXJ0ZXh0"
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups: []sops.KeyGroup{{key}}, EncryptedRegex: "^(data|stringData)$", Version: "3.13.3",
	}}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		t.Fatal(err)
	}
	cipher := sopsaes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		t.Fatal(err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// secretManifest is a Secret with its keys in alphabetical order, as kubectl writes
// them: the hub's build currently re-sorts every object's keys, and SOPS' MAC covers
// values in document order, so only a sorted manifest survives it.
func secretManifest(ns string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: " + ns + "\nstringData:\n  dsn: postgres://db:5432/${cluster_name}\n  password: hunter2\ntype: Opaque\n"
}

// putAgeKey stores id where the agent finds decryption keys, as the Secret name
// (a new one at each run of the test).
func putAgeKey(t *testing.T, c client.Client, name string, id *age.X25519Identity) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleetv1.SystemNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.SystemNamespace, Name: name},
		StringData: map[string]string{"identity.agekey": id.String()},
	}
	if err := c.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func setVariables(t testing.TB, c client.Client, cluster string, vars map[string]string) {
	t.Helper()
	var cl fleetv1.Cluster
	if err := c.Get(context.Background(), types.NamespacedName{Name: cluster}, &cl); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cl.DeepCopy())
	cl.Spec.Variables = vars
	if err := c.Patch(context.Background(), &cl, patch); err != nil {
		t.Fatal(err)
	}
}

// waitAssignment waits for the Assignment of Kustomization ns/name in cluster's
// namespace and returns it.
func waitAssignment(t *testing.T, c client.Client, cluster, ns, name string) *fleetv1.Assignment {
	t.Helper()
	a := assignmentOf(cluster, ns, name)
	env.WaitFor(t, c, a, func(*fleetv1.Assignment) error { return nil })
	return a
}

// TestPostBuildAndDecryption: one artifact, built once by the hub, is specialised per
// cluster by substitution on each spoke, and carries a SOPS-encrypted Secret that only
// the spokes, which hold the age key, can decrypt.
func TestPostBuildAndDecryption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, pbNS := sharedFleet(t, "postbuild")
	hub := fleet.HubClient()
	wrongNS := pbNS + "-wrongkey"
	keySecret := ns + "-sops-age"                       // the spokes' age identity, in the agents' namespace
	storeDir := filepath.Join(fleet.Dir(), "artifacts") // the hub's artifacts (devenv.Options.StorageDir)
	// spoke-2 and spoke-3, whose region variables the shared fleet sets.
	spokes := map[string]client.Client{"spoke-2": fleet.SpokeClient("spoke-2"), "spoke-3": fleet.SpokeClient("spoke-3")}

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range spokes {
		putAgeKey(t, c, keySecret, id) // on the spokes only: the hub never holds it
	}
	vaultNS := pbNS + "-vault"
	vaultKeySecret := ns + "-sops-vault"
	vaultKey := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.SystemNamespace, Name: vaultKeySecret},
		StringData: map[string]string{"sops.vault-token": "hvs.test-token"},
	}
	if err := spokes["spoke-2"].Create(ctx, vaultKey); err != nil {
		t.Fatal(err)
	}

	git := gitserver.New(t)
	repo := git.CreateRepo("postbuild")
	repo.Write(map[string]string{
		"deploy/kustomization.yaml": kustomization("ns.yaml", "cm.yaml", "secret.yaml"),
		"deploy/ns.yaml":            namespace(pbNS),
		"deploy/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: " + pbNS + "\ndata:\n" +
			"  greeting: \"${greeting}\"\n  cluster: ${cluster_name}\n  region: ${region}\n  fallback: ${missing:=fallback}\n" +
			"  literal: $${greeting}\n",
		"deploy/secret.yaml": sopsEncrypt(t, secretManifest(pbNS), id.Recipient().String()),
		// The same Secret, encrypted for a key no spoke holds, next to a canary that
		// must not be applied either.
		"wrong/kustomization.yaml": kustomization("ns.yaml", "canary.yaml", "secret.yaml"),
		"wrong/ns.yaml":            namespace(wrongNS),
		"wrong/canary.yaml":        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: canary\n  namespace: " + wrongNS + "\n",
		"wrong/secret.yaml":        sopsEncrypt(t, secretManifest(wrongNS), stranger.Recipient().String()),
		// A Secret only a Vault transit key opens, which the default agent cannot use.
		"vault/kustomization.yaml": kustomization("ns.yaml", "canary.yaml", "secret.yaml"),
		"vault/ns.yaml":            namespace(vaultNS),
		"vault/canary.yaml":        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: canary\n  namespace: " + vaultNS + "\n",
		"vault/secret.yaml":        sopsEncryptVault(t, secretManifest(vaultNS), "https://vault.example.invalid:8200"),
	})
	src := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "postbuild"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour}},
	}
	if err := hub.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	everywhere := byName("spoke-2", "spoke-3")
	newKs := func(name, path string) *deliveryv1.Kustomization {
		return &deliveryv1.Kustomization{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: deliveryv1.KustomizationSpec{
				SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "postbuild"},
				Path:      path, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
				Placement: everywhere,
				ApplySettings: meta.ApplySettings{
					PostBuild:  &meta.PostBuild{Substitute: map[string]string{"greeting": "hello"}},
					Decryption: &meta.Decryption{Provider: "sops", SecretRef: &meta.LocalObjectReference{Name: keySecret}},
				},
			},
		}
	}
	ks := newKs("app", "./deploy")
	if err := hub.Create(ctx, ks); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logDeployment(t, hub, ks)
		}
	})

	t.Run("variables are specialised per cluster from one artifact", func(t *testing.T) {
		for name, c := range spokes {
			want := map[string]string{"greeting": "hello", "cluster": name, "region": regions[name],
				"fallback": "fallback", "literal": "${greeting}"}
			env.Eventually(t, "ConfigMap settings on "+name, func() error {
				var cm corev1.ConfigMap
				if err := c.Get(ctx, types.NamespacedName{Namespace: pbNS, Name: "settings"}, &cm); err != nil {
					return err
				}
				for k, v := range want {
					if cm.Data[k] != v {
						return fmt.Errorf("data %v, want %v", cm.Data, want)
					}
				}
				return nil
			})
		}
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, "")
		a1, a2 := waitAssignment(t, hub, "spoke-2", ns, "app"), waitAssignment(t, hub, "spoke-3", ns, "app")
		if a1.Spec.Artifact.Digest != a2.Spec.Artifact.Digest {
			t.Fatalf("the hub built two artifacts: %s and %s", a1.Spec.Artifact.Digest, a2.Spec.Artifact.Digest)
		}
		if a1.Spec.PostBuild.Substitute["region"] != regions["spoke-2"] || a2.Spec.PostBuild.Substitute[meta.ClusterNameVariable] != "spoke-3" {
			t.Fatalf("Assignments do not carry the cluster variables: %v, %v", a1.Spec.PostBuild.Substitute, a2.Spec.PostBuild.Substitute)
		}
	})

	t.Run("the encrypted Secret arrives decrypted on the spokes only", func(t *testing.T) {
		for name, c := range spokes {
			env.Eventually(t, "Secret db on "+name, func() error {
				var s corev1.Secret
				if err := c.Get(ctx, types.NamespacedName{Namespace: pbNS, Name: "db"}, &s); err != nil {
					return err
				}
				// Encrypted values are not substituted: the MAC covers them as written.
				if string(s.Data["password"]) != "hunter2" || string(s.Data["dsn"]) != "postgres://db:5432/${cluster_name}" {
					return fmt.Errorf("data %q", s.Data)
				}
				return nil
			})
		}
		cur := currentKustomization(t, hub, ks)
		// Read from the hub's store itself: its HTTP server serves only agents.
		store, err := storage.New(storeDir, "")
		if err != nil {
			t.Fatal(err)
		}
		data, err := store.Get(cur.Status.Artifact.Digest)
		if err != nil {
			t.Fatal(err)
		}
		files, err := artifact.Unpack(bytes.NewReader(data), 0)
		if err != nil {
			t.Fatal(err)
		}
		manifests := string(files[kustomize.ManifestsFile])
		if !strings.Contains(manifests, "ENC[AES256_GCM") || strings.Contains(manifests, "hunter2") {
			t.Fatalf("the hub's artifact does not hold the Secret encrypted:\n%s", manifests)
		}
		if !strings.Contains(manifests, "${cluster_name}") {
			t.Fatalf("the hub's artifact is already substituted:\n%s", manifests)
		}
	})

	t.Run("a Secret encrypted for another key fails and applies nothing", func(t *testing.T) {
		wrong := newKs("wrong", "./wrong")
		wrong.Spec.Placement = byName("spoke-2")
		if err := hub.Create(ctx, wrong); err != nil {
			t.Fatal(err)
		}
		a := waitAssignment(t, hub, "spoke-2", ns, "wrong")
		env.WaitFor(t, hub, a, func(a *fleetv1.Assignment) error {
			c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
			if c == nil || c.Status != metav1.ConditionFalse {
				return fmt.Errorf("Ready is %+v, want False", c)
			}
			for _, s := range []string{"decrypting Secret " + wrongNS + "/db", stranger.Recipient().String()} {
				if !strings.Contains(c.Message, s) {
					return fmt.Errorf("message %q does not say %q", c.Message, s)
				}
			}
			if a.Status.AppliedDigest != "" || a.Status.Inventory != 0 {
				return fmt.Errorf("something was applied: %+v", a.Status)
			}
			return nil
		})
		env.WaitFor(t, hub, wrong, func(k *deliveryv1.Kustomization) error {
			if k.Status.Clusters.Failed != 1 || len(k.Status.Failures) != 1 || !strings.Contains(k.Status.Failures[0].Message, "decrypting Secret") {
				return fmt.Errorf("clusters %+v, failures %+v", k.Status.Clusters, k.Status.Failures)
			}
			return nil
		})
		var cm corev1.ConfigMap
		err := spokes["spoke-2"].Get(ctx, types.NamespacedName{Namespace: wrongNS, Name: "canary"}, &cm)
		if !apierrors.IsNotFound(err) {
			t.Fatalf("the canary of a deployment that failed to decrypt was applied (err=%v)", err)
		}
	})

	t.Run("a Secret only a Vault key opens: the default agent names the image that can", func(t *testing.T) {
		vault := newKs("vault", "./vault")
		vault.Spec.Placement = byName("spoke-2")
		vault.Spec.Decryption.SecretRef.Name = vaultKeySecret
		if err := hub.Create(ctx, vault); err != nil {
			t.Fatal(err)
		}
		a := waitAssignment(t, hub, "spoke-2", ns, "vault")
		env.WaitFor(t, hub, a, func(a *fleetv1.Assignment) error {
			c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
			if c == nil || c.Status != metav1.ConditionFalse {
				return fmt.Errorf("Ready is %+v, want False", c)
			}
			for _, s := range []string{"decrypting Secret " + vaultNS + "/db",
				"HashiCorp Vault transit https://vault.example.invalid:8200/v1/transit/keys/apps",
				"flotilla-agent-kms", "-tags sopskms"} {
				if !strings.Contains(c.Message, s) {
					return fmt.Errorf("message %q does not say %q", c.Message, s)
				}
			}
			if a.Status.AppliedDigest != "" || a.Status.Inventory != 0 {
				return fmt.Errorf("something was applied: %+v", a.Status)
			}
			return nil
		})
		var cm corev1.ConfigMap
		err := spokes["spoke-2"].Get(ctx, types.NamespacedName{Namespace: vaultNS, Name: "canary"}, &cm)
		if !apierrors.IsNotFound(err) {
			t.Fatalf("the canary of a deployment that failed to decrypt was applied (err=%v)", err)
		}
	})
}

// logDeployment tells what the hub and the agents report, to explain a failure.
func logDeployment(t *testing.T, c client.Client, ks *deliveryv1.Kustomization) {
	ctx := context.Background()
	var k deliveryv1.Kustomization
	if err := c.Get(ctx, client.ObjectKeyFromObject(ks), &k); err == nil {
		t.Logf("Kustomization %s: conditions %+v, clusters %+v, failures %+v", ks.Name, k.Status.Conditions, k.Status.Clusters, k.Status.Failures)
	}
	var list fleetv1.AssignmentList
	if err := c.List(ctx, &list, client.MatchingLabels{fleetv1.OwnerNameLabel: ks.Name}); err == nil {
		for _, a := range list.Items {
			t.Logf("Assignment %s/%s: message %q, conditions %+v", a.Namespace, a.Name, a.Status.Message, a.Status.Conditions)
		}
	}
}
