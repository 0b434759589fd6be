package cli

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/kustomize"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/spoke/apply"
	"github.com/flotilla-dev/flotilla/spoke/drift"
	"github.com/flotilla-dev/flotilla/spoke/postbuild"
	"github.com/flotilla-dev/flotilla/spoke/sops"
)

func newDiffCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "diff", Short: "Show what applying a build would change on a cluster"}
	var (
		path    string
		cluster string
		spoke   spokeFlags
	)
	ks := &cobra.Command{
		Use:     "kustomization NAME --path DIR --cluster C",
		Aliases: []string{"ks"},
		Short:   "Server-side dry-run a local build on one cluster, as its agent would apply it, and print a diff",
		Long: `Build DIR with the hub's rules (as flotilla build does), substitute the variables
the Kustomization's Assignment for cluster C carries (and spec.postBuild.substituteFrom,
read on the spoke as the Assignment's identity), then server-side apply every object on
C with a dry run, as that identity and with the agent's field manager, and print a
unified diff of each object that would change. Objects the Assignment applied (as the
agent records them on the spoke, in --agent-namespace, read as the kubeconfig's user)
that the build no longer holds are listed as deleted when the Kustomization prunes.

Secret values are never shown: each stands as a digest keyed for this run only, so a
change shows but the digest cannot be checked against guesses. SOPS-encrypted
Secrets are not compared: their keys never leave the spoke's agent.

The exit code is 0 when nothing would change, 1 when something would, and 1 with a
message on errors, as flux diff does. The spoke is reached with --spoke-kubeconfig,
--fleet-dir (a flotilla dev up folder) or a kubeconfig context named after C.`,
		Example: `  flotilla diff kustomization podinfo --path ./apps/podinfo --cluster prod-eu-1
  flotilla diff ks podinfo --path ./apps/podinfo --cluster spoke-1 --fleet-dir .dev/fleet`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNamesOf(g, "kustomizations"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" || cluster == "" {
				return errors.New("--path (the folder to build) and --cluster (where to compare) are required")
			}
			changed, err := diffKustomization(cmd.Context(), g, &spoke, args[0], path, cluster)
			if err != nil {
				return err
			}
			if changed {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	ks.Flags().StringVar(&path, "path", "", "the folder to build, in a local checkout of the source")
	_ = ks.MarkFlagDirname("path")
	ks.Flags().StringVar(&cluster, "cluster", "", "the cluster to compare with")
	_ = ks.RegisterFlagCompletionFunc("cluster", completeClusters(g))
	spoke.add(ks)
	spoke.addAgentNamespace(ks)
	cmd.AddCommand(ks)
	return cmd
}

// assignmentFor reads the Assignment of deployment kind ns/name on cluster.
func assignmentFor(ctx context.Context, hub client.Client, kind, ns, name, cluster string) (*fleetv1.Assignment, error) {
	a := &fleetv1.Assignment{}
	key := client.ObjectKey{Namespace: fleetv1.ClusterNamespace(cluster), Name: fleetv1.AssignmentName(kind, ns, name)}
	if err := hub.Get(ctx, key, a); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%s %s/%s is not assigned to cluster %s (no Assignment %s)", kind, ns, name, cluster, key)
		}
		return nil, err
	}
	return a, nil
}

// serviceAccountUser is the user an Assignment applies as on its spoke, as the
// agent computes it: spec.serviceAccountName in spec.serviceAccountNamespace, else
// the target namespace, else default; "" for the agent's own identity.
func serviceAccountUser(a *fleetv1.Assignment) string {
	if a.Spec.ServiceAccountName == "" {
		return ""
	}
	ns := a.Spec.ServiceAccountNamespace
	if ns == "" {
		ns = a.Spec.TargetNamespace
	}
	if ns == "" {
		ns = "default"
	}
	return "system:serviceaccount:" + ns + ":" + a.Spec.ServiceAccountName
}

func diffKustomization(ctx context.Context, g *globals, spoke *spokeFlags, name, path, cluster string) (bool, error) {
	hub, ks, err := g.kustomization(ctx, name)
	if err != nil {
		return false, err
	}
	asg, err := assignmentFor(ctx, hub, deliveryv1.KustomizationKind, ks.Namespace, ks.Name, cluster)
	if err != nil {
		return false, err
	}
	user := serviceAccountUser(asg)
	sc, err := spoke.client(g, cluster, user)
	if err != nil {
		return false, err
	}
	manifests, err := buildLocal(path, kustomize.OverlayOf(&ks.Spec))
	if err != nil {
		return false, err
	}
	if pb := asg.Spec.PostBuild; pb != nil {
		ns := asg.Spec.TargetNamespace
		if ns == "" {
			ns = "default"
		}
		vars, err := postbuild.Variables(ctx, sc, ns, pb)
		if err != nil {
			return false, fmt.Errorf("postBuild on %s: %w", cluster, err)
		}
		if manifests, err = substitute(manifests, vars); err != nil {
			return false, err
		}
	}
	objs, err := apply.Parse(map[string][]byte{kustomizeManifests: manifests})
	if err != nil {
		return false, err
	}
	apply.SortForApply(objs)

	owner := asg.Namespace + "/" + asg.Name
	d := differ{c: sc, fieldOwner: agent.FieldManager(asg), owner: owner, target: asg.Spec.TargetNamespace, g: g}
	changed := false
	built := map[string]bool{}
	for _, u := range objs {
		if sops.IsEncrypted(u) {
			// Not compared, but still in the build: prune would keep it.
			if err := d.namespace(u); err != nil {
				return changed, err
			}
			built[apply.RefOf(u).ID()] = true
			fmt.Fprintf(g.out, "► %s skipped: SOPS-encrypted, decrypted only by the agent\n", apply.RefOf(u))
			continue
		}
		c, id, err := d.one(ctx, u)
		if err != nil {
			return changed, err
		}
		built[id] = true
		changed = changed || c
	}
	if asg.Spec.Prune {
		entries, err := spoke.inventory(ctx, g, cluster, asg)
		if err != nil {
			return changed, err
		}
		for _, e := range entries {
			if built[e.ID] {
				continue
			}
			ref, err := apply.ParseEntry(e)
			if err != nil {
				continue
			}
			gone, err := d.pruned(ctx, ref)
			if err != nil {
				return changed, err
			}
			changed = changed || gone
		}
	}
	if !changed {
		fmt.Fprintf(g.errOut, "✔ no changes on %s\n", cluster)
	}
	return changed, nil
}

// kustomizeManifests names the build's one file, as in the hub's artifact.
const kustomizeManifests = "manifests.yaml"

// differ compares objects with what a server-side apply would make of them.
type differ struct {
	c          client.Client
	fieldOwner string
	owner      string
	target     string
	g          *globals
}

// one prints what applying u would do and whether it changes anything; id is u's
// inventory ID once namespaced.
func (d *differ) one(ctx context.Context, u *unstructured.Unstructured) (changed bool, id string, err error) {
	if err := d.namespace(u); err != nil {
		return false, "", err
	}
	ref := apply.RefOf(u)
	id = ref.ID()
	d.mark(u)
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(u.GroupVersionKind())
	exists := true
	switch err := d.c.Get(ctx, types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}, live); {
	case apierrors.IsNotFound(err):
		exists = false
	case err != nil:
		return false, id, fmt.Errorf("%s: %w", ref, err)
	}
	if u.GetAnnotations()[apply.ReconcileAnnotation] == apply.Disabled || (exists && live.GetAnnotations()[apply.ReconcileAnnotation] == apply.Disabled) {
		fmt.Fprintf(d.g.out, "► %s skipped (%s: %s)\n", ref, apply.ReconcileAnnotation, apply.Disabled)
		return false, id, nil
	}
	if exists && u.GetAnnotations()[apply.SSAAnnotation] == apply.IfNotPresent {
		return false, id, nil
	}
	if exists {
		if holder := live.GetAnnotations()[apply.AssignmentAnnotation]; holder != "" && holder != d.owner && !isNamespace(live) {
			fmt.Fprintf(d.g.out, "► %s conflict: Assignment %s applied it; it would not be taken over\n", ref, holder)
			return true, id, nil
		}
	}
	dry := u.DeepCopy()
	if err := d.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry),
		client.FieldOwner(d.fieldOwner), client.ForceOwnership, client.DryRunAll); err != nil {
		return false, id, fmt.Errorf("%s: dry run: %w", ref, err)
	}
	if !exists {
		fmt.Fprintf(d.g.out, "► %s created\n", ref)
		return true, id, nil
	}
	if len(drift.Diff(live, dry)) == 0 {
		return false, id, nil
	}
	fmt.Fprintf(d.g.out, "► %s drifted\n", ref)
	text, err := unifiedDiff(ref.String(), live, dry)
	if err != nil {
		return false, id, err
	}
	fmt.Fprint(d.g.out, text)
	return true, id, nil
}

// protectedNamespaces are never pruned (spoke/apply keeps the same list).
var protectedNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true}

// pruned prints what pruning ref would do and reports whether it deletes it.
func (d *differ) pruned(ctx context.Context, ref apply.ObjectRef) (bool, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(ref.GroupVersionKind())
	err := d.c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, live)
	switch {
	case apierrors.IsNotFound(err), apimeta.IsNoMatchError(err):
		return false, nil // already gone
	case err != nil:
		return false, fmt.Errorf("%s: %w", ref, err)
	}
	ann := live.GetAnnotations()
	switch {
	case ann[apply.PruneAnnotation] == apply.Disabled || ann[apply.ReconcileAnnotation] == apply.Disabled:
		fmt.Fprintf(d.g.out, "► %s kept: it is annotated not to be pruned\n", ref)
		return false, nil
	case ann[apply.AssignmentAnnotation] != d.owner:
		return false, nil // another deployment's now
	case isNamespace(live) && protectedNamespaces[live.GetName()]:
		return false, nil
	}
	fmt.Fprintf(d.g.out, "► %s deleted\n", ref)
	return true, nil
}

// namespace gives u the namespace the agent would: the target namespace, else its
// own, else default, and none when its kind is cluster-scoped.
func (d *differ) namespace(u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	m, err := d.c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if apimeta.IsNoMatchError(err) {
			return fmt.Errorf("the spoke serves no kind %s in version %s", gvk.Kind, gvk.GroupVersion())
		}
		return err
	}
	switch {
	case m.Scope.Name() != apimeta.RESTScopeNameNamespace:
		u.SetNamespace("")
	case d.target != "":
		u.SetNamespace(d.target)
	case u.GetNamespace() == "":
		u.SetNamespace("default")
	}
	return nil
}

// mark puts on u the label and annotations the agent puts on what it applies
// (spoke/apply), so that they are not reported as changes.
func (d *differ) mark(u *unstructured.Unstructured) {
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[apply.ManagedByLabel] = apply.ManagedByValue
	u.SetLabels(labels)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[apply.AssignmentAnnotation] = d.owner
	if isNamespace(u) {
		sum := sha256.Sum256([]byte(d.owner))
		ann["declared-by.fleet.flotilla.dev/"+hex.EncodeToString(sum[:])[:16]] = d.owner
	}
	u.SetAnnotations(ann)
}

func isNamespace(u *unstructured.Unstructured) bool {
	return u.GetKind() == "Namespace" && u.GetAPIVersion() == "v1"
}

// unifiedDiff prints live and desired as YAML, without what the server writes, and
// with Secret values hidden (hiddenValue).
func unifiedDiff(name string, live, desired *unstructured.Unstructured) (string, error) {
	a, err := diffable(live)
	if err != nil {
		return "", err
	}
	b, err := diffable(desired)
	if err != nil {
		return "", err
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: name + " (live)", ToFile: name + " (after apply)", Context: 3,
	})
}

// secretKey keys the digests that stand for Secret values: a change still shows (the
// same value gives the same digest within one run), but a digest cannot be checked
// against guesses after the run, as a plain hash of a short password could.
var secretKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}()

func hiddenValue(v string) string {
	m := hmac.New(sha256.New, secretKey)
	m.Write([]byte(v))
	return "<hidden " + hex.EncodeToString(m.Sum(nil))[:12] + ">"
}

func diffable(u *unstructured.Unstructured) (string, error) {
	obj := u.DeepCopy().Object
	delete(obj, "status")
	if md, ok := obj["metadata"].(map[string]any); ok {
		for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"} {
			delete(md, f)
		}
	}
	if u.GetKind() == "Secret" && u.GetAPIVersion() == "v1" {
		for _, field := range []string{"data", "stringData"} {
			if m, ok := obj[field].(map[string]any); ok {
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					m[k] = hiddenValue(fmt.Sprint(m[k]))
				}
			}
		}
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n") + "\n", nil
}
