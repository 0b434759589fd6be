package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// Shell completion: cobra's own `flotilla completion bash|zsh|fish|powershell`
// prints the scripts; the functions here give them kinds and the names of objects on
// the hub, read with the same --kubeconfig, --context and --namespace flags.

// completionTimeout keeps a slow or absent hub from hanging the shell.
const completionTimeout = 5 * time.Second

// kindNames are the names `get` and `export` accept as KIND, plural first.
func kindNames() []string {
	var out []string
	for _, k := range kinds {
		out = append(out, k.names[0])
	}
	return out
}

// objectNames lists the names of k's objects on the hub, in the namespace the flags
// give, that start with prefix.
func objectNames(cmd *cobra.Command, g *globals, k kind, prefix string) []string {
	ns := ""
	if k.namespaced {
		if all, err := cmd.Flags().GetBool("all-namespaces"); err != nil || !all {
			if ns, err = g.ns(); err != nil {
				return nil
			}
		}
		if cl, err := cmd.Flags().GetString("cluster"); err == nil && cl != "" && k.names[0] == "assignments" {
			ns = fleetv1.ClusterNamespace(cl)
		}
	}
	c, err := g.client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	list := k.newList()
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil
	}
	objs, err := objects(list)
	if err != nil {
		return nil
	}
	var out []string
	for _, o := range objs {
		if strings.HasPrefix(o.GetName(), prefix) {
			out = append(out, o.GetName())
		}
	}
	return out
}

// completeKindAndNames completes KIND, then names of that kind (for get, export).
func completeKindAndNames(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			var out []string
			for _, n := range kindNames() {
				if strings.HasPrefix(n, toComplete) {
					out = append(out, n)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
		k, err := findKind(args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return objectNames(cmd, g, k, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNamesOf completes one NAME of the kind named kindName.
func completeNamesOf(g *globals, kindName string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		k, err := findKind(kindName)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return objectNames(cmd, g, k, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeClusters completes a --cluster flag with the Clusters on the hub.
func completeClusters(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return completeNamesOf(g, "clusters")(cmd, nil, toComplete)
	}
}
