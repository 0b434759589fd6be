package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/apply"
)

// Helm's ownership annotations on the objects of a release.
const (
	helmReleaseNameAnnotation      = "meta.helm.sh/release-name"
	helmReleaseNamespaceAnnotation = "meta.helm.sh/release-namespace"
)

func newTraceCommand(g *globals) *cobra.Command {
	var (
		cluster string
		spoke   spokeFlags
	)
	cmd := &cobra.Command{
		Use:   "trace KIND NAME | KIND/NAME --cluster C [-n NAMESPACE]",
		Short: "Say which deployment, revision and source an object on a spoke comes from",
		Long: `Read an object on cluster C and follow it back through the hub: the Assignment
that applied it (the agent's fleet.flotilla.dev/assignment annotation, or for a Helm
release's objects Helm's release annotations), the Kustomization or HelmRelease that
owns the Assignment, the revision assigned and the one the agent last applied, and
the source with its URL and revision. KIND is a kind or resource as kubectl takes it
(deployment, configmaps, deployments.apps). -n is the object's namespace on the spoke.`,
		Example: `  flotilla trace deployment podinfo -n apps --cluster prod-eu-1
  flotilla trace cm/settings -n apps --cluster spoke-1 --fleet-dir .dev/fleet`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cluster == "" {
				return errors.New("--cluster is required")
			}
			if len(args) == 1 {
				k, n, ok := strings.Cut(args[0], "/")
				if !ok || k == "" || n == "" {
					return fmt.Errorf("%q: give KIND NAME or KIND/NAME", args[0])
				}
				args = []string{k, n}
			}
			return trace(cmd.Context(), g, &spoke, cluster, args[0], args[1])
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "the cluster the object is on")
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(g))
	spoke.add(cmd)
	return cmd
}

func trace(ctx context.Context, g *globals, spoke *spokeFlags, cluster, kindArg, name string) error {
	sc, err := spoke.client(g, cluster, "")
	if err != nil {
		return err
	}
	cfg, err := spoke.config(g, cluster)
	if err != nil {
		return err
	}
	mapper, err := shortNameMapper(cfg)
	if err != nil {
		return err
	}
	gvk, namespaced, err := resolveKind(mapper, kindArg)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvk)
	key := client.ObjectKey{Name: name}
	if namespaced {
		// -n names the object's namespace on the spoke; the hub context's does not apply.
		key.Namespace = g.namespace
		if key.Namespace == "" {
			key.Namespace = "default"
		}
	}
	if err := sc.Get(ctx, key, obj); err != nil {
		return fmt.Errorf("%s %s on %s: %w", gvk.Kind, key, cluster, err)
	}
	ref := apply.RefOf(obj)

	hub, err := g.client()
	if err != nil {
		return err
	}
	asg, how, err := assignmentOfObject(ctx, hub, obj, cluster)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", ref, cluster, err)
	}

	t := &table{w: tabwriter.NewWriter(g.out, 0, 8, 2, ' ', 0)}
	t.row("Object:", ref.String())
	t.row("Cluster:", cluster)
	t.row("Managed by:", how)
	t.row("Assignment:", asg.Namespace+"/"+asg.Name)
	status, msg := readyOf(asg)
	t.row("Assignment ready:", strings.TrimSpace(status+" "+msg))
	t.row("Revision assigned:", asg.Spec.Artifact.Revision)
	t.row("Revision applied:", asg.Status.AppliedRevision)
	o := asg.Spec.Owner
	t.row("Deployment:", o.Kind+" "+o.Namespace+"/"+o.Name)
	srcKind, srcNS, srcName := "", "", ""
	switch o.Kind {
	case deliveryv1.KustomizationKind:
		var k deliveryv1.Kustomization
		if err := hub.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.Name}, &k); err != nil {
			t.row("Deployment state:", err.Error())
			break
		}
		p := k.Spec.Path
		if p == "" {
			p = "./"
		}
		t.row("Path:", p)
		status, msg := readyOf(&k)
		t.row("Deployment ready:", strings.TrimSpace(status+" "+msg))
		srcKind, srcNS, srcName = k.Spec.SourceRef.Kind, k.Spec.SourceRef.Namespace, k.Spec.SourceRef.Name
	case deliveryv1.HelmReleaseKind:
		var h deliveryv1.HelmRelease
		if err := hub.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.Name}, &h); err != nil {
			t.row("Deployment state:", err.Error())
			break
		}
		t.row("Chart:", strings.TrimSpace(h.Spec.Chart.Chart+" "+h.Spec.Chart.Version))
		if r := asg.Status.Release; r != nil {
			t.row("Helm release:", fmt.Sprintf("%s/%s revision %d (%s, chart %s)", r.Namespace, r.Name, r.Revision, r.Status, r.ChartVersion))
		}
		status, msg := readyOf(&h)
		t.row("Deployment ready:", strings.TrimSpace(status+" "+msg))
		srcKind, srcNS, srcName = h.Spec.Chart.SourceRef.Kind, h.Spec.Chart.SourceRef.Namespace, h.Spec.Chart.SourceRef.Name
	}
	if srcKind != "" {
		if srcNS == "" {
			srcNS = o.Namespace
		}
		t.row("Source:", srcKind+" "+srcNS+"/"+srcName)
		if sk := sourceKinds[srcKind]; sk != nil {
			src := sk.newObj()
			if err := hub.Get(ctx, client.ObjectKey{Namespace: srcNS, Name: srcName}, src); err != nil {
				t.row("Source state:", err.Error())
			} else {
				t.row("Source URL:", sourceURL(src))
				t.row("Source revision:", sk.revision(src))
				status, msg := readyOf(src)
				t.row("Source ready:", strings.TrimSpace(status+" "+msg))
			}
		}
	}
	return t.flush()
}

// shortNameMapper is a RESTMapper of the spoke that also knows short names (cm,
// deploy) and singular names, as kubectl does.
func shortNameMapper(cfg *rest.Config) (apimeta.RESTMapper, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cached := memory.NewMemCacheClient(dc)
	return restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, func(string) {}), nil
}

// resolveKind maps what a user types (deployment, deployments.apps, ConfigMap) to a
// kind the spoke serves, and says whether it is namespaced.
func resolveKind(m apimeta.RESTMapper, arg string) (schema.GroupVersionKind, bool, error) {
	resource, group, _ := strings.Cut(strings.ToLower(arg), ".")
	gvk, err := m.KindFor(schema.GroupVersionResource{Group: group, Resource: resource})
	if err != nil {
		return gvk, false, fmt.Errorf("the spoke serves no kind %q: %w", arg, err)
	}
	mapping, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return gvk, false, err
	}
	return gvk, mapping.Scope.Name() == apimeta.RESTScopeNameNamespace, nil
}

// assignmentOfObject finds the Assignment on the hub that put obj on cluster, and
// says how it knows.
func assignmentOfObject(ctx context.Context, hub client.Client, obj *unstructured.Unstructured, cluster string) (*fleetv1.Assignment, string, error) {
	ann := obj.GetAnnotations()
	if owner := ann[apply.AssignmentAnnotation]; owner != "" {
		ns, name, ok := strings.Cut(owner, "/")
		if !ok || ns != fleetv1.ClusterNamespace(cluster) {
			return nil, "", fmt.Errorf("its %s annotation %q does not name an Assignment of cluster %s", apply.AssignmentAnnotation, owner, cluster)
		}
		asg := &fleetv1.Assignment{}
		if err := hub.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, asg); err != nil {
			return nil, "", fmt.Errorf("Assignment %s named by its %s annotation: %w", owner, apply.AssignmentAnnotation, err)
		}
		how := "flotilla (annotation " + apply.AssignmentAnnotation + ")"
		for _, f := range obj.GetManagedFields() {
			if strings.HasPrefix(f.Manager, "flotilla/") {
				how = "flotilla, field manager " + f.Manager
			}
		}
		return asg, how, nil
	}
	if rel := ann[helmReleaseNameAnnotation]; rel != "" {
		relNS := ann[helmReleaseNamespaceAnnotation]
		var list fleetv1.AssignmentList
		if err := hub.List(ctx, &list, client.InNamespace(fleetv1.ClusterNamespace(cluster))); err != nil {
			return nil, "", err
		}
		for i := range list.Items {
			a := &list.Items[i]
			if r := a.Status.Release; r != nil && r.Name == rel && r.Namespace == relNS {
				return a, "Helm release " + relNS + "/" + rel + ", installed by the agent", nil
			}
		}
		return nil, "", fmt.Errorf("it belongs to Helm release %s/%s, which no Assignment of cluster %s reports", relNS, rel, cluster)
	}
	return nil, "", fmt.Errorf("it is not managed by Flotilla: no %s annotation and no Helm release", apply.AssignmentAnnotation)
}

func sourceURL(o client.Object) string {
	switch s := o.(type) {
	case *sourcev1.GitRepository:
		return s.Spec.URL
	case *sourcev1.HelmRepository:
		return s.Spec.URL
	case *sourcev1.OCIRepository:
		return s.Spec.URL
	}
	return ""
}
