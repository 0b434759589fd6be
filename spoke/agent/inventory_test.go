package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/test/env"
)

// TestInventoryOnTheSpoke: what the agent applied is listed in its record on the
// spoke, not in the hub's status, and that record alone drives prune and release,
// across an agent that stops in the middle of a pass.
func TestInventoryOnTheSpoke(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "inventory")
	hub, arts := c.hub, c.arts
	ctx := context.Background()
	stop := c.runAgent(t, c.hubCP.Config(), nil)
	top := t // the agent started again in a subtest runs to the end of the test

	v1 := arts.Add("inv@1", map[string]string{"m.yaml": c.namespace() + configMap("a", "1") + configMap("b", "1")})
	key := c.newAssignment(t, "inv", v1, nil)

	t.Run("the hub gets the count, the spoke the list", func(t *testing.T) {
		a := waitReady(t, hub, key, v1.Digest)
		if a.Status.Inventory != 3 || len(a.Status.Entries) != 0 {
			t.Errorf("hub status: inventory %d, entries %v; want 3 and no entries", a.Status.Inventory, a.Status.Entries)
		}
		c.wantRecorded(t, a, "_"+c.appNS+"__Namespace", c.appNS+"_a__ConfigMap", c.appNS+"_b__ConfigMap")
		// A steady state writes nothing on the spoke: two resyncs (2 s apart here),
		// each recording what it is about to apply and then what it applied, leave
		// the record's Secret as it was.
		first := c.stateSecret(t)
		time.Sleep(5 * time.Second)
		if again := c.stateSecret(t); again.ResourceVersion != first.ResourceVersion {
			t.Errorf("the record was rewritten in a steady state: resourceVersion %s, then %s", first.ResourceVersion, again.ResourceVersion)
		}
	})

	t.Run("a new revision prunes what it dropped, from the spoke's record", func(t *testing.T) {
		v2 := arts.Add("inv@2", map[string]string{"m.yaml": c.namespace() + configMap("a", "2")})
		c.setArtifact(t, key, v2)
		a := waitReady(t, hub, key, v2.Digest)
		c.wantGone(t, "b")
		c.expectConfigMapValue(t, "a", "2")
		if a.Status.Inventory != 2 || len(a.Status.Entries) != 0 {
			t.Errorf("hub status: inventory %d, entries %v; want 2 and no entries", a.Status.Inventory, a.Status.Entries)
		}
		c.wantRecorded(t, a, "_"+c.appNS+"__Namespace", c.appNS+"_a__ConfigMap")
	})

	t.Run("an agent stopped in the middle of a pass still prunes what the pass created", func(t *testing.T) {
		// The pass creates ConfigMap c, then stops at a Service the server refuses:
		// it never gets to its final record, as if the agent had died there.
		v3 := arts.Add("inv@3", map[string]string{"m.yaml": c.namespace() + configMap("a", "3") + configMap("c", "3") +
			"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  ports:\n  - port: 99999\n"})
		c.setArtifact(t, key, v3)
		a := waitCondition(t, hub, key, metav1.ConditionFalse, meta.ApplyFailedReason)
		c.expectConfigMapValue(t, "c", "3")
		if len(a.Status.Entries) != 0 {
			t.Errorf("hub entries %v after a failed pass, want none", a.Status.Entries)
		}
		// Recorded before the pass: what it was about to apply, on top of what ran.
		c.wantRecorded(t, a, "_"+c.appNS+"__Namespace", c.appNS+"_a__ConfigMap", c.appNS+"_c__ConfigMap", c.appNS+"_broken__Service")

		stop()
		// A new agent knows only the spoke's record.
		stop = c.runAgent(top, c.hubCP.Config(), nil)
		v4 := arts.Add("inv@4", map[string]string{"m.yaml": c.namespace() + configMap("a", "4")})
		c.setArtifact(t, key, v4)
		a = waitReady(t, hub, key, v4.Digest)
		c.wantGone(t, "c")
		c.expectConfigMapValue(t, "a", "4")
		c.wantRecorded(t, a, "_"+c.appNS+"__Namespace", c.appNS+"_a__ConfigMap")
	})

	t.Run("release prunes everything the record lists, and drops the record", func(t *testing.T) {
		if err := hub.Delete(ctx, current(t, hub, key)); err != nil {
			t.Fatal(err)
		}
		a := waitReleased(t, hub, key)
		if a.Status.Inventory != 0 || len(a.Status.Entries) != 0 {
			t.Errorf("released: inventory %d, entries %v", a.Status.Inventory, a.Status.Entries)
		}
		c.wantGone(t, "a")
		ns := &corev1.Namespace{}
		if err := c.spoke.Client().Get(ctx, types.NamespacedName{Name: c.appNS}, ns); err == nil && ns.DeletionTimestamp.IsZero() {
			t.Errorf("Namespace %s was not deleted", c.appNS)
		}
		if _, found, err := agent.ReadInventory(ctx, c.spoke.Client(), fleetv1.SystemNamespace, a); err != nil || found {
			t.Errorf("the record of a released Assignment: found %v, %v", found, err)
		}
		a.Finalizers = nil
		if err := hub.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
	})
}

// TestInventoryFromAnOlderAgent: an Assignment an older agent applied has its list in
// the hub's status and none on the spoke. The agent takes that list once, keeps it on
// the spoke, prunes by it, and clears it from the hub.
func TestInventoryFromAnOlderAgent(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "older")
	hub, arts := c.hub, c.arts
	ctx := context.Background()
	stop := c.runAgent(t, c.hubCP.Config(), nil)
	v1 := arts.Add("old@1", map[string]string{"m.yaml": c.namespace() + configMap("a", "1") + configMap("b", "1")})
	key := c.newAssignment(t, "old", v1, nil)
	a := waitReady(t, hub, key, v1.Digest)
	entries := c.recorded(t, a)
	stop()

	// What an older agent leaves: the list in the hub's status, no record on the spoke;
	// and, while no agent runs, a new revision that drops b.
	secs := &corev1.SecretList{}
	if err := c.spoke.Client().List(ctx, secs, client.InNamespace(fleetv1.SystemNamespace), client.MatchingLabels{agent.StateLabel: c.name}); err != nil {
		t.Fatal(err)
	}
	if len(secs.Items) != 1 {
		t.Fatalf("%d state Secrets, want 1", len(secs.Items))
	}
	if err := c.spoke.Client().Delete(ctx, &secs.Items[0]); err != nil {
		t.Fatal(err)
	}
	before := a.DeepCopy()
	a.Status.Entries = entries
	if err := hub.Status().Patch(ctx, a, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	v2 := arts.Add("old@2", map[string]string{"m.yaml": c.namespace() + configMap("a", "2")})
	c.setArtifact(t, key, v2)

	// And one whose spec was edited after the hub signed it, carrying a list that
	// names a: the agent takes over only a signed Assignment's list.
	forgedKey := c.newAssignment(t, "forged", v2, nil)
	forged := current(t, hub, forgedKey)
	forged.Spec.Prune = false
	if err := hub.Update(ctx, forged); err != nil {
		t.Fatal(err)
	}
	before = forged.DeepCopy()
	forged.Status.Entries = []fleetv1.InventoryEntry{{ID: c.appNS + "_a__ConfigMap", Version: "v1"}}
	if err := hub.Status().Patch(ctx, forged, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}

	c.runAgent(t, c.hubCP.Config(), nil)
	a = waitReady(t, hub, key, v2.Digest)
	forged = waitCondition(t, hub, forgedKey, metav1.ConditionFalse, meta.VerificationFailedReason)
	if _, found, err := agent.ReadInventory(ctx, c.spoke.Client(), fleetv1.SystemNamespace, forged); err != nil || found {
		t.Errorf("a record of the unsigned Assignment on the spoke: found %v, %v", found, err)
	}
	if len(forged.Status.Entries) != 1 {
		t.Errorf("the unsigned Assignment's hub entries: %v, want them left as they were", forged.Status.Entries)
	}
	c.wantGone(t, "b")
	c.expectConfigMapValue(t, "a", "2")
	if a.Status.Inventory != 2 || len(a.Status.Entries) != 0 {
		t.Errorf("hub status: inventory %d, entries %v; want 2 and no entries", a.Status.Inventory, a.Status.Entries)
	}
	c.wantRecorded(t, a, "_"+c.appNS+"__Namespace", c.appNS+"_a__ConfigMap")
}

// TestInventoryWhenTheStatusWriteFails: an agent whose status writes the hub refuses
// (as if it died right after applying) still leaves a record on the spoke, so the
// next agent prunes what the hub never heard of.
func TestInventoryWhenTheStatusWriteFails(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "nostatus")
	hub, arts := c.hub, c.arts
	ctx := context.Background()
	// The agent's hub rights (hub/registration) without assignments/status.
	user := "flotilla:agent:" + c.name
	mute, err := c.hubCP.AddUser(user)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: c.hubNS, Name: "mute-agent"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{fleetv1.GroupVersion.Group}, Resources: []string{"assignments"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: c.hubNS, Name: "mute-agent"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
	for _, o := range []client.Object{role, binding} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	stop := c.runAgent(t, mute, nil)
	v1 := arts.Add("mute@1", map[string]string{"m.yaml": c.namespace() + configMap("a", "1") + configMap("b", "1")})
	key := c.newAssignment(t, "mute", v1, nil)
	// The record lists a and b before they are applied: wait for the apply itself.
	env.Eventually(t, "ConfigMaps a and b applied", func() error {
		for _, name := range []string{"a", "b"} {
			if err := c.spoke.Client().Get(ctx, types.NamespacedName{Namespace: c.appNS, Name: name}, &corev1.ConfigMap{}); err != nil {
				return err
			}
		}
		return nil
	})
	a := current(t, hub, key)
	c.wantRecorded(t, a, "_"+c.appNS+"__Namespace", c.appNS+"_a__ConfigMap", c.appNS+"_b__ConfigMap")
	if a = current(t, hub, key); a.Status.AppliedDigest != "" || a.Status.Inventory != 0 {
		t.Fatalf("the hub heard of the apply: %+v", a.Status)
	}
	stop()

	c.runAgent(t, c.hubCP.Config(), nil)
	v2 := arts.Add("mute@2", map[string]string{"m.yaml": c.namespace() + configMap("a", "2")})
	c.setArtifact(t, key, v2)
	a = waitReady(t, hub, key, v2.Digest)
	c.wantGone(t, "b")
	c.expectConfigMapValue(t, "a", "2")
	if a.Status.Inventory != 2 || len(a.Status.Entries) != 0 {
		t.Errorf("hub status: inventory %d, entries %v; want 2 and no entries", a.Status.Inventory, a.Status.Entries)
	}
}

// recorded returns the inventory the agent keeps for a on the spoke.
func (c *cluster) recorded(t *testing.T, a *fleetv1.Assignment) []fleetv1.InventoryEntry {
	t.Helper()
	entries, found, err := agent.ReadInventory(context.Background(), c.spoke.Client(), fleetv1.SystemNamespace, a)
	if err != nil || !found {
		t.Fatalf("the agent's record of %s/%s: found %v, %v", a.Namespace, a.Name, found, err)
	}
	return entries
}

// wantRecorded checks that the agent's record of a lists exactly ids (the final
// record is written right after the status, so it is waited for).
func (c *cluster) wantRecorded(t *testing.T, a *fleetv1.Assignment, ids ...string) {
	t.Helper()
	env.Eventually(t, fmt.Sprintf("record of %s listing %v", a.Name, ids), func() error {
		entries, found, err := agent.ReadInventory(context.Background(), c.spoke.Client(), fleetv1.SystemNamespace, a)
		if err != nil || !found {
			return fmt.Errorf("found %v, %v", found, err)
		}
		got := map[string]bool{}
		for _, e := range entries {
			got[e.ID] = true
		}
		for _, id := range ids {
			if !got[id] {
				return fmt.Errorf("%s missing from %v", id, entries)
			}
		}
		if len(got) != len(ids) {
			return fmt.Errorf("recorded %v, want only %v", entries, ids)
		}
		return nil
	})
}

// stateSecret returns the cluster's one record Secret.
func (c *cluster) stateSecret(t *testing.T) corev1.Secret {
	t.Helper()
	secs := &corev1.SecretList{}
	if err := c.spoke.Client().List(context.Background(), secs, client.InNamespace(fleetv1.SystemNamespace), client.MatchingLabels{agent.StateLabel: c.name}); err != nil {
		t.Fatal(err)
	}
	if len(secs.Items) != 1 {
		t.Fatalf("%d state Secrets, want 1", len(secs.Items))
	}
	return secs.Items[0]
}

func (c *cluster) wantGone(t *testing.T, configMap string) {
	t.Helper()
	err := c.spoke.Client().Get(context.Background(), types.NamespacedName{Namespace: c.appNS, Name: configMap}, &corev1.ConfigMap{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap %s: %v, want NotFound", configMap, err)
	}
}
