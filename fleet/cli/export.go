package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func newExportCommand(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "export KIND [NAME...]",
		Short: "Print objects as clean YAML to keep in Git: no status, no server-set metadata",
		Long: "Print objects as clean YAML to keep in Git: spec, labels and annotations only. " +
			"status, managedFields, uid, resourceVersion, creationTimestamp, generation, " +
			"ownerReferences, finalizers and kubectl's last-applied annotation are left out. " +
			"KIND is any kind `flotilla get` knows.",
		Example: `  flotilla export kustomization podinfo > podinfo.yaml
  flotilla export gitrepositories -A
  flotilla export clusters`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeKindAndNames(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := findKind(args[0])
			if err != nil {
				return err
			}
			ns := ""
			if k.namespaced && !all {
				if ns, err = g.ns(); err != nil {
					return err
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			list := k.newList()
			if err := c.List(cmd.Context(), list, client.InNamespace(ns)); err != nil {
				return listError(k, err)
			}
			objs, err := objects(list)
			if err != nil {
				return err
			}
			if objs, err = selectNames(objs, args[1:], k, ns); err != nil {
				return err
			}
			if len(objs) == 0 {
				fmt.Fprintf(g.errOut, "No %s found.\n", k.names[0])
				return nil
			}
			for i, o := range objs {
				doc, err := exportable(c, o)
				if err != nil {
					return err
				}
				b, err := yaml.Marshal(doc)
				if err != nil {
					return err
				}
				if i > 0 || len(objs) > 1 {
					fmt.Fprintln(g.out, "---")
				}
				if _, err := g.out.Write(b); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "export across all namespaces")
	return cmd
}

// serverSetAnnotations are annotations the server or a tool wrote, not the user.
var serverSetAnnotations = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
}

// exportable turns an object into the map a user would commit: apiVersion, kind,
// metadata (name, namespace, labels, annotations) and spec.
func exportable(c client.Client, o client.Object) (map[string]any, error) {
	gvk, err := c.GroupVersionKindFor(o)
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	md := map[string]any{"name": o.GetName()}
	if o.GetNamespace() != "" {
		md["namespace"] = o.GetNamespace()
	}
	if l := o.GetLabels(); len(l) > 0 {
		md["labels"] = l
	}
	ann := map[string]string{}
	for k, v := range o.GetAnnotations() {
		ann[k] = v
	}
	for _, k := range serverSetAnnotations {
		delete(ann, k)
	}
	// A reconcile request is a one-off instruction, not desired state.
	for k := range ann {
		if strings.HasSuffix(k, "/reconcile-requested-at") {
			delete(ann, k)
		}
	}
	if len(ann) > 0 {
		md["annotations"] = ann
	}
	out := map[string]any{"apiVersion": gvk.GroupVersion().String(), "kind": gvk.Kind, "metadata": md}
	if spec, ok := m["spec"]; ok {
		out["spec"] = spec
	}
	return out, nil
}
