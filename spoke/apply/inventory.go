package apply

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// ObjectRef names one object on the spoke.
type ObjectRef struct {
	Group, Version, Kind string
	Namespace, Name      string
}

// RefOf returns the reference of an object.
func RefOf(u *unstructured.Unstructured) ObjectRef {
	gvk := u.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// GroupVersionKind of the referenced object.
func (r ObjectRef) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// ID is the inventory ID: <namespace>_<name>_<group>_<kind>. None of the four may
// hold an underscore, so the ID splits back unambiguously.
func (r ObjectRef) ID() string { return EntryID(r.Namespace, r.Name, r.Group, r.Kind) }

// Entry is the inventory entry of the object.
func (r ObjectRef) Entry() fleetv1.InventoryEntry {
	return fleetv1.InventoryEntry{ID: r.ID(), Version: r.Version}
}

// String is how messages name an object: Kind/namespace/name, or Kind/name when
// cluster-scoped.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// EntryID builds an inventory ID.
func EntryID(namespace, name, group, kind string) string {
	return namespace + "_" + name + "_" + group + "_" + kind
}

// ParseEntry turns an inventory entry back into a reference.
func ParseEntry(e fleetv1.InventoryEntry) (ObjectRef, error) {
	parts := strings.Split(e.ID, "_")
	if len(parts) != 4 || parts[1] == "" || parts[3] == "" || e.Version == "" {
		return ObjectRef{}, fmt.Errorf("inventory entry %q (version %q) is not <namespace>_<name>_<group>_<kind>", e.ID, e.Version)
	}
	return ObjectRef{Namespace: parts[0], Name: parts[1], Group: parts[2], Kind: parts[3], Version: e.Version}, nil
}

// Diff returns the entries of old whose object is not in keep, whatever the version.
func Diff(old, keep []fleetv1.InventoryEntry) []fleetv1.InventoryEntry {
	kept := make(map[string]bool, len(keep))
	for _, e := range keep {
		kept[e.ID] = true
	}
	var out []fleetv1.InventoryEntry
	for _, e := range old {
		if !kept[e.ID] {
			out = append(out, e)
		}
	}
	return out
}

// Merge returns old with the entries of added appended or, for objects already in
// old, their version updated. A partial apply keeps both, so prune never loses track.
func Merge(old, added []fleetv1.InventoryEntry) []fleetv1.InventoryEntry {
	out := append([]fleetv1.InventoryEntry(nil), old...)
	at := make(map[string]int, len(out))
	for i, e := range out {
		at[e.ID] = i
	}
	for _, e := range added {
		if i, ok := at[e.ID]; ok {
			out[i] = e
			continue
		}
		at[e.ID] = len(out)
		out = append(out, e)
	}
	return out
}

// sortForDelete orders references so that what others depend on goes last.
func sortForDelete(refs []ObjectRef) {
	sort.SliceStable(refs, func(i, j int) bool { return rank(refs[i]) > rank(refs[j]) })
}

// Plan returns the inventory entries objs will have once applied with target as the
// target namespace, without applying or changing them: the agent records them before
// it applies, so that an object the pass creates is remembered even if the agent stops
// before the pass ends. The scope of a kind the spoke does not serve yet is read from
// a CustomResourceDefinition among objs; a kind found nowhere is taken as namespaced
// (an entry naming no object costs a NotFound at the next prune, nothing more).
func (e *Engine) Plan(objs []*unstructured.Unstructured, target string) []fleetv1.InventoryEntry {
	declared := map[schema.GroupKind]bool{} // namespaced, by the CRDs in objs
	for _, u := range objs {
		if rank(RefOf(u)) != 0 {
			continue
		}
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(u.Object, "spec", "scope")
		declared[schema.GroupKind{Group: group, Kind: kind}] = scope != "Cluster"
	}
	out := make([]fleetv1.InventoryEntry, 0, len(objs))
	for _, u := range objs {
		ref := RefOf(u)
		namespaced := false
		if rank(ref) > 1 {
			gvk := ref.GroupVersionKind()
			if m, err := e.client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
				namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
			} else if n, ok := declared[gvk.GroupKind()]; ok {
				namespaced = n
			} else {
				namespaced = true
			}
		}
		ref.Namespace = namespaceFor(namespaced, target, ref.Namespace)
		out = append(out, ref.Entry())
	}
	return out
}
