package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/spoke/apply"
)

// TestDiffer runs the diff of single objects against a real API server standing in
// for a spoke: what would be created, changed, left alone, refused or pruned.
func TestDiffer(t *testing.T) {
	h := hubPlane.Get(t)
	c := h.cp.Client()
	ctx := context.Background()
	ns := "differ"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	owner := "flotilla-cluster-x/ks.apps.web"
	var out bytes.Buffer
	d := &differ{c: c, fieldOwner: "flotilla/ks.apps.web", owner: owner, target: ns, g: &globals{out: &out}}
	obj := func(doc string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		return u
	}
	cm := func(name, value string, ann map[string]string) *unstructured.Unstructured {
		u := obj("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  value: " + value + "\n")
		u.SetAnnotations(ann)
		return u
	}
	// live applies u as the agent would have.
	live := func(u *unstructured.Unstructured, asOwner string) {
		t.Helper()
		u = u.DeepCopy()
		if err := d.namespace(u); err != nil {
			t.Fatal(err)
		}
		dd := *d
		dd.owner = asOwner
		dd.mark(u)
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(d.fieldOwner), client.ForceOwnership); err != nil {
			t.Fatal(err)
		}
	}
	one := func(u *unstructured.Unstructured) (bool, string) {
		t.Helper()
		out.Reset()
		changed, id, err := d.one(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(id, ns+"_") {
			t.Errorf("id %q is not in the target namespace", id)
		}
		return changed, out.String()
	}

	if changed, text := one(cm("new", "a", nil)); !changed || !strings.Contains(text, "► ConfigMap/differ/new created") {
		t.Errorf("a new object: %v %q", changed, text)
	}

	live(cm("same", "a", nil), owner)
	if changed, text := one(cm("same", "a", nil)); changed || text != "" {
		t.Errorf("an object as it is: %v %q", changed, text)
	}
	if changed, text := one(cm("same", "b", nil)); !changed || !strings.Contains(text, "-  value: a\n+  value: b\n") {
		t.Errorf("a changed object: %v %q", changed, text)
	}

	live(cm("theirs", "a", nil), "flotilla-cluster-x/ks.other.app")
	if changed, text := one(cm("theirs", "b", nil)); !changed || !strings.Contains(text, "conflict: Assignment flotilla-cluster-x/ks.other.app applied it") {
		t.Errorf("another deployment's object: %v %q", changed, text)
	}

	if changed, text := one(cm("untouched", "b", map[string]string{apply.ReconcileAnnotation: apply.Disabled})); changed || !strings.Contains(text, "skipped") {
		t.Errorf("reconcile disabled: %v %q", changed, text)
	}

	// Nothing was written: the dry runs left the server as it was.
	var got corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "same"}, &got); err != nil || got.Data["value"] != "a" {
		t.Errorf("after the diffs: %v, %v", err, got.Data)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "new"}, &got); err == nil {
		t.Error("the diff created ConfigMap new")
	}

	live(cm("kept", "a", map[string]string{apply.PruneAnnotation: apply.Disabled}), owner)
	for name, want := range map[string]string{"same": "► ConfigMap/differ/same deleted\n", "kept": "kept", "theirs": "", "missing": ""} {
		out.Reset()
		ref := apply.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: name}
		deleted, err := d.pruned(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if deleted != (name == "same") || (want == "" && out.Len() > 0) || !strings.Contains(out.String(), want) {
			t.Errorf("prune of %s: deleted=%v, %q", name, deleted, out.String())
		}
	}

	// Secret values never show.
	secret := obj("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\n")
	live(secret, owner)
	changedSecret := obj("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter3\n")
	changed, text := one(changedSecret)
	if !changed || strings.Contains(text, "hunter") || strings.Contains(text, "aHVudGVy") || !strings.Contains(text, "-  password: <hidden ") {
		t.Errorf("a changed Secret: %v %q", changed, text)
	}
}
