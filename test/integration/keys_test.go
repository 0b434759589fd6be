package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/fleetenv"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/cli"
	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/hub/signing"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/spoke/trust"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// flotilla runs one CLI command line against the fleet's hub.
func flotilla(fleet *fleetenv.Fleet, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := cli.NewRootCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--kubeconfig", fleet.HubKubeconfig()}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// verifiesWith reports whether an Assignment's signature verifies with key alone.
func verifiesWith(a *fleetv1.Assignment, key ed25519.PublicKey) bool {
	return artifact.VerifyStatement(a.Labels[fleetv1.ClusterLabel], a, []ed25519.PublicKey{key}) == nil
}

func wantReason(a *fleetv1.Assignment, status metav1.ConditionStatus, reason string) error {
	c := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
	if c == nil || c.Status != status || (reason != "" && c.Reason != reason) {
		return fmt.Errorf("Ready is %+v, want %s/%s", c, status, reason)
	}
	return nil
}

// TestSigningKeyRotation rotates the hub's signing key under a running fleet: the new
// key reaches the agent in a bundle signed by the old one; an artifact signed before
// the rotation (the Assignment of a suspended Kustomization, which the hub does not
// rewrite) and one signed after both verify; once the old key is retired, only what
// it alone signed stops verifying, until the hub signs it again.
func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet := fleetenv.StartFleet(t, 1, fleetenv.With(func(o *devenv.Options) {
		// Re-applying (and so re-verifying) often shows a retired key's effect quickly.
		o.Agent = func(a *agent.Options) { a.ResyncInterval = 3 * time.Second }
	}))
	hub := fleet.HubClient()
	spoke := spokeTarget(fleet, "spoke-1", appNS)
	sys := manager.DefaultSystemNamespace
	trustFile := filepath.Join(fleet.Dir(), "agents", "spoke-1", trust.FileName)

	keys, err := signing.Read(ctx, hub, sys)
	if err != nil {
		t.Fatal(err)
	}
	key1 := keys.Active
	pub1 := keys.Keys[key1].Public().(ed25519.PublicKey)

	git := gitserver.New(t)
	repo := git.CreateRepo("keys")
	rev1 := repo.Write(map[string]string{
		"frozen/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"frozen/ns.yaml":            namespace(appNS),
		"frozen/a.yaml":             configMap(appNS, "a", "one"),
		"live/kustomization.yaml":   kustomization("b.yaml"),
		"live/b.yaml":               configMap(appNS, "b", "one"),
	})
	src := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "keys"},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour}},
	}
	if err := hub.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	newKs := func(name string, dependsOn ...string) *deliveryv1.Kustomization {
		ks := &deliveryv1.Kustomization{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: deliveryv1.KustomizationSpec{
				SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "keys"},
				Path:      "./" + name, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
				Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}},
			},
		}
		if err := hub.Create(ctx, ks); err != nil {
			t.Fatal(err)
		}
		return ks
	}
	frozen, live := newKs("frozen"), newKs("live")
	spoke.wantValue(t, "a", "one")
	spoke.wantValue(t, "b", "one")
	wantCounts(t, hub, live, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, rev1)

	frozenA, liveA := assignmentOf("spoke-1", frozen.Namespace, frozen.Name), assignmentOf("spoke-1", live.Namespace, live.Name)
	env.WaitFor(t, hub, frozenA, func(a *fleetv1.Assignment) error {
		if !verifiesWith(a, pub1) {
			return fmt.Errorf("not signed by the first key %s", key1)
		}
		return wantReason(a, metav1.ConditionTrue, "")
	})

	// The hub leaves a suspended Kustomization's Assignment as it is, signature and all.
	suspend(t, hub, frozen, true)

	var key2 string
	var pub2 ed25519.PublicKey
	var rotationBundle map[string]string // the bundle of sequence 2, which still lists key1
	t.Run("rotate: the new key signs, the agent learns it from a bundle the old key signed", func(t *testing.T) {
		out, err := flotilla(fleet, "keys", "rotate")
		if err != nil {
			t.Fatalf("keys rotate: %v\n%s", err, out)
		}
		keys, err := signing.Read(ctx, hub, sys)
		if err != nil {
			t.Fatal(err)
		}
		key2 = keys.Active
		pub2 = keys.Keys[key2].Public().(ed25519.PublicKey)
		if key2 == key1 || !strings.Contains(out, key2) || len(keys.Keys) != 2 {
			t.Fatalf("after rotate: active %s, keys %v, output %q", key2, keys.IDs(), out)
		}
		// The running hub picks the Secret up without a restart.
		env.Eventually(t, "the hub signs with the new key", func() error {
			pubs := fleet.HubInstance().PublicKeys()
			if len(pubs) != 2 || artifact.KeyID(pubs[0]) != key2 {
				return fmt.Errorf("hub's keys %d, first %s", len(pubs), artifact.KeyID(pubs[0]))
			}
			return nil
		})
		env.Eventually(t, "the agent trusts both keys", func() error {
			set, err := trust.Open(trustFile, nil)
			if err != nil {
				return err
			}
			if ids := strings.Join(set.IDs(), ","); set.Sequence() < 2 || !strings.Contains(ids, key1) || !strings.Contains(ids, key2) {
				return fmt.Errorf("agent trusts %s at sequence %d", ids, set.Sequence())
			}
			return nil
		})
		var cm corev1.ConfigMap
		if err := hub.Get(ctx, types.NamespacedName{Namespace: fleetv1.ClusterNamespace("spoke-1"), Name: fleetv1.TrustConfigMapName}, &cm); err != nil {
			t.Fatal(err)
		}
		if _, by, err := artifact.VerifyTrustBundle([]byte(cm.Data[artifact.TrustBundleKey]), []byte(cm.Data[artifact.TrustSignaturesKey]),
			[]ed25519.PublicKey{pub1}); err != nil || by != key1 {
			t.Fatalf("the published bundle does not verify with the old key alone: %v (by %s)", err, by)
		}
		rotationBundle = cm.Data
	})

	t.Run("artifacts signed before and after the rotation both verify on the spoke", func(t *testing.T) {
		rev2 := repo.Write(map[string]string{"live/b.yaml": configMap(appNS, "b", "two"), "frozen/a.yaml": configMap(appNS, "a", "two")})
		fetchNow(t, hub, src, rev2)
		spoke.wantValue(t, "b", "two")
		wantCounts(t, hub, live, meta.ClusterCounts{Targeted: 1, Applied: 1, Ready: 1}, rev2)
		env.WaitFor(t, hub, liveA, func(a *fleetv1.Assignment) error {
			if !verifiesWith(a, pub2) || verifiesWith(a, pub1) {
				return fmt.Errorf("artifact B is not signed by the new key %s", key2)
			}
			return wantReason(a, metav1.ConditionTrue, "")
		})
		// Artifact A, signed by the old key only, keeps verifying: the agent re-applies
		// it every few seconds, and its key set still verifies the signature.
		if err := hub.Get(ctx, client.ObjectKeyFromObject(frozenA), frozenA); err != nil {
			t.Fatal(err)
		}
		if !verifiesWith(frozenA, pub1) || verifiesWith(frozenA, pub2) {
			t.Fatal("the suspended Kustomization's Assignment was re-signed")
		}
		set, err := trust.Open(trustFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := artifact.VerifyStatement("spoke-1", frozenA, set.Keys()); err != nil {
			t.Fatalf("the agent's keys do not verify artifact A: %v", err)
		}
		// The barrier: a hand edit of A's object, which the agent (the Kustomization is
		// suspended, and suspend holds on the spoke) reports as drift left as found,
		// only after fetching A and verifying it with the keys it trusts now.
		editByHand(t, spoke, "a")
		env.WaitFor(t, hub, frozenA, func(a *fleetv1.Assignment) error {
			d := apimeta.FindStatusCondition(a.Status.Conditions, meta.DriftedCondition)
			if d == nil || d.Status != metav1.ConditionTrue || !strings.Contains(d.Message, "suspended") {
				return fmt.Errorf("Drifted is %+v, want the hand edit reported and left (suspended)", d)
			}
			return wantReason(a, metav1.ConditionTrue, "")
		})
		if v, err := spoke.value("a"); err != nil || v != "by hand" {
			t.Fatalf("ConfigMap a is %q (err=%v): a suspended deployment's object was corrected", v, err)
		}
	})

	t.Run("retire: refused while an Assignment needs the key, then only its signatures fail", func(t *testing.T) {
		if out, err := flotilla(fleet, "keys", "retire", key2); err == nil || !strings.Contains(err.Error(), "active") {
			t.Fatalf("retiring the active key: %v\n%s", err, out)
		}
		out, err := flotilla(fleet, "keys", "list")
		if err != nil || !strings.Contains(out, key1) || !strings.Contains(out, key2) {
			t.Fatalf("keys list: %v\n%s", err, out)
		}
		if out, err := flotilla(fleet, "keys", "retire", key1); err == nil || !strings.Contains(err.Error(), frozenA.Name) {
			t.Fatalf("retire should name the Assignment only key1 signs: %v\n%s", err, out)
		}
		if out, err := flotilla(fleet, "keys", "retire", key1, "--force"); err != nil {
			t.Fatalf("keys retire --force: %v\n%s", err, out)
		}
		env.Eventually(t, "the agent no longer trusts the first key", func() error {
			set, err := trust.Open(trustFile, nil)
			if err != nil {
				return err
			}
			if ids := set.IDs(); len(ids) != 1 || ids[0] != key2 {
				return fmt.Errorf("agent trusts %v", ids)
			}
			return nil
		})
		env.WaitFor(t, hub, frozenA, func(a *fleetv1.Assignment) error {
			if err := wantReason(a, metav1.ConditionFalse, meta.VerificationFailedReason); err != nil {
				return err
			}
			if !strings.Contains(a.Status.Message, "signature") {
				return fmt.Errorf("message %q does not name the signature", a.Status.Message)
			}
			return nil
		})
		// The barrier, as above: B's object edited by hand comes back only once the
		// agent has verified B again with the one key it trusts now.
		editByHand(t, spoke, "b")
		spoke.wantValue(t, "b", "two")
		env.WaitFor(t, hub, liveA, func(a *fleetv1.Assignment) error { return wantReason(a, metav1.ConditionTrue, "") })
	})

	t.Run("resumed, the Kustomization is signed with the new key and applies", func(t *testing.T) {
		suspend(t, hub, frozen, false)
		spoke.wantValue(t, "a", "two")
		env.WaitFor(t, hub, frozenA, func(a *fleetv1.Assignment) error {
			if !verifiesWith(a, pub2) {
				return fmt.Errorf("not re-signed with %s", key2)
			}
			return wantReason(a, metav1.ConditionTrue, "")
		})
	})
	t.Run("a replayed older bundle or a forged one is ignored, and the hub puts its own back", func(t *testing.T) {
		ns := fleetv1.ClusterNamespace("spoke-1")
		// The hub puts its own bundle back at once, so whether the agent's cache sees
		// a bad one is a race; spoke/trust's tests check the event. What must hold is
		// that the agent's keys never change: every state they are in from now on is
		// recorded, until the barrier below.
		states := watchTrust(t, trustFile)
		for _, tc := range []struct {
			name string
			data func() map[string]string
		}{
			// Signed by key2 too, but older: accepting it would bring key1 back.
			{"replay", func() map[string]string { return rotationBundle }},
			{"forged", func() map[string]string {
				rogue, _ := artifact.GenerateKey()
				pubs := []ed25519.PublicKey{rogue.Public().(ed25519.PublicKey), pub1, pub2}
				b, _ := artifact.NewTrustBundle(99, time.Now(), artifact.KeyID(pubs[0]), pubs)
				bundle, sigs, _ := artifact.SignTrustBundle(b, rogue)
				return map[string]string{artifact.TrustBundleKey: string(bundle), artifact.TrustSignaturesKey: string(sigs)}
			}},
		} {
			// The hub may be putting the previous case's bundle back meanwhile.
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var cm corev1.ConfigMap
				if err := hub.Get(ctx, types.NamespacedName{Namespace: ns, Name: fleetv1.TrustConfigMapName}, &cm); err != nil {
					return err
				}
				cm.Data = tc.data()
				return hub.Update(ctx, &cm)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		env.WaitFor(t, hub, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fleetv1.TrustConfigMapName}},
			func(cm *corev1.ConfigMap) error {
				b, _, err := artifact.VerifyTrustBundle([]byte(cm.Data[artifact.TrustBundleKey]), []byte(cm.Data[artifact.TrustSignaturesKey]),
					[]ed25519.PublicKey{pub2})
				if err != nil || b.Sequence != 3 {
					return fmt.Errorf("the hub has not put its bundle back: %v %+v", err, b)
				}
				return nil
			})

		// The barrier: a new key (sequence 4), which the agent takes up only after the
		// versions of the ConfigMap before it. Had it taken up the forged bundle
		// (sequence 99), it would refuse this one.
		if out, err := flotilla(fleet, "keys", "rotate"); err != nil {
			t.Fatalf("keys rotate: %v\n%s", err, out)
		}
		keys, err := signing.Read(ctx, hub, sys)
		if err != nil {
			t.Fatal(err)
		}
		key3 := keys.Active
		env.Eventually(t, "the agent trusts the third key", func() error {
			set, err := trust.Open(trustFile, nil)
			if err != nil {
				return err
			}
			if set.Sequence() != 4 || !slices.Contains(set.IDs(), key3) {
				return fmt.Errorf("agent trusts %v at sequence %d", set.IDs(), set.Sequence())
			}
			return nil
		})
		want := []string{trustState([]string{key2}, 3), trustState([]string{key2, key3}, 4)}
		if got := states(); !slices.Equal(got, want) {
			t.Fatalf("the agent's keys went through %v, want %v", got, want)
		}
	})

}

func suspend(t *testing.T, c client.Client, ks *deliveryv1.Kustomization, on bool) {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(ks), ks); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ks.DeepCopy())
	ks.Spec.Suspend = on
	if err := c.Patch(context.Background(), ks, patch); err != nil {
		t.Fatal(err)
	}
}

// editByHand changes ConfigMap name's value on a spoke, as kubectl edit would.
func editByHand(t *testing.T, tg target, name string) {
	t.Helper()
	var cm corev1.ConfigMap
	if err := tg.c.Get(context.Background(), types.NamespacedName{Namespace: tg.ns, Name: name}, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["value"] = "by hand"
	if err := tg.c.Update(context.Background(), &cm, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
}

func trustState(ids []string, sequence int64) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return fmt.Sprintf("%s@%d", strings.Join(ids, ","), sequence)
}

// watchTrust records the states of an agent's trusted keys (trustState), looking
// every 10ms from now until the test ends; states looks once more and returns those
// seen so far, in order.
func watchTrust(t *testing.T, path string) (states func() []string) {
	var mu sync.Mutex
	var seen []string
	look := func() {
		set, err := trust.Open(path, nil)
		if err != nil {
			return
		}
		s := trustState(set.IDs(), set.Sequence())
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			look()
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() []string {
		look()
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}
