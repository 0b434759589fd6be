package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

func newGetCommand(g *globals) *cobra.Command {
	var (
		all     bool
		output  string
		cluster string
	)
	var names []string
	for _, k := range kinds {
		names = append(names, "  "+strings.Join(k.names, ", "))
	}
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "List Flotilla objects on the hub with their readiness",
		Long:  "List Flotilla objects on the hub with their readiness. KIND is one of:\n" + strings.Join(names, "\n"),
		Example: `  flotilla get kustomizations -A
  flotilla get clusters
  flotilla get assignments --cluster spoke-1`,
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
				if cluster != "" {
					ns = fleetv1.ClusterNamespace(cluster)
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
			switch output {
			case "":
				return printTable(g, k, objs, k.namespaced && all)
			case "json", "yaml":
				return printObjects(g, c, objs, output, len(args) == 2)
			default:
				return fmt.Errorf("unknown output format %q: use json or yaml", output)
			}
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	cmd.Flags().StringVar(&cluster, "cluster", "", "with assignments: those of this cluster (its hub namespace)")
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(g))
	return cmd
}

// objects returns a list's items sorted by namespace and name.
func objects(list client.ObjectList) ([]client.Object, error) {
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	objs := make([]client.Object, 0, len(items))
	for _, it := range items {
		objs = append(objs, it.(client.Object))
	}
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].GetNamespace() != objs[j].GetNamespace() {
			return objs[i].GetNamespace() < objs[j].GetNamespace()
		}
		return objs[i].GetName() < objs[j].GetName()
	})
	return objs, nil
}

func selectNames(objs []client.Object, names []string, k kind, ns string) ([]client.Object, error) {
	if len(names) == 0 {
		return objs, nil
	}
	var out []client.Object
	for _, n := range names {
		found := false
		for _, o := range objs {
			if o.GetName() == n {
				out = append(out, o)
				found = true
			}
		}
		if !found {
			where := ""
			if k.namespaced && ns != "" {
				where = " in namespace " + ns
			}
			return nil, fmt.Errorf("%s %q not found%s", strings.TrimSuffix(k.names[0], "s"), n, where)
		}
	}
	return out, nil
}

func listError(k kind, err error) error {
	if apimeta.IsNoMatchError(err) {
		return fmt.Errorf("the hub does not know %s: are the Flotilla CRDs installed? (%w)", k.names[0], err)
	}
	return err
}

func printTable(g *globals, k kind, objs []client.Object, withNamespace bool) error {
	if len(objs) == 0 {
		fmt.Fprintf(g.errOut, "No %s found.\n", k.names[0])
		return nil
	}
	header := []string{"NAME"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	header = append(append(header, k.columns...), "AGE", "READY", "STATUS")
	t := newTable(g.out, header...)
	for _, o := range objs {
		row := []string{o.GetName()}
		if withNamespace {
			row = append([]string{o.GetNamespace()}, row...)
		}
		ready, msg := readyOf(o)
		row = append(append(row, k.row(o)...), age(o), ready, truncate(msg, 100))
		t.row(row...)
	}
	return t.flush()
}

// printObjects prints one object, or a kubectl-style List of several, with their kinds.
func printObjects(g *globals, c client.Client, objs []client.Object, format string, single bool) error {
	for _, o := range objs {
		gvk, err := c.GroupVersionKindFor(o)
		if err != nil {
			return err
		}
		o.GetObjectKind().SetGroupVersionKind(gvk)
		o.SetManagedFields(nil)
	}
	var doc any = map[string]any{"apiVersion": "v1", "kind": "List", "items": objs}
	if single && len(objs) == 1 {
		doc = objs[0]
	}
	return printDoc(g, doc, format)
}

func printDoc(g *globals, doc any, format string) error {
	var b []byte
	var err error
	if format == "yaml" {
		b, err = yaml.Marshal(doc)
	} else {
		b, err = json.MarshalIndent(doc, "", "  ")
		b = append(b, '\n')
	}
	if err != nil {
		return err
	}
	_, err = g.out.Write(b)
	return err
}
