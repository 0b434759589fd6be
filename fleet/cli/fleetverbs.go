package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// The fleet kinds under reconcile, suspend and resume. A Cluster is suspended by
// pausing it (spec.paused: the hub hands it no new revision); an Assignment is
// reconciled by its agent, which re-applies it at once on a new request.

// clusterPauseCommand is `flotilla suspend|resume cluster NAME`.
func clusterPauseCommand(g *globals, pause bool) *cobra.Command {
	verb, done := "resume", "resumed (spec.paused: false)"
	if pause {
		verb, done = "suspend", "paused (spec.paused: true): the hub hands it no new revision"
	}
	return &cobra.Command{
		Use:               "cluster NAME",
		Aliases:           []string{"fcluster"},
		Short:             verb + ": a Cluster (spec.paused)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNamesOf(g, "clusters"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cl := &fleetv1.Cluster{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Name: args[0]}, cl); err != nil {
				return fmt.Errorf("Cluster %s: %w", args[0], err)
			}
			patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"paused": pause}})
			if err := c.Patch(cmd.Context(), cl, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return err
			}
			fmt.Fprintf(g.errOut, "✔ Cluster %s %s\n", args[0], done)
			return nil
		},
	}
}

// reconcileAssignmentCommand is `flotilla reconcile assignment NAME --cluster C`.
func reconcileAssignmentCommand(g *globals) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "assignment NAME --cluster C",
		Short: "Ask a cluster's agent to apply an Assignment again now",
		Long: `Ask a cluster's agent to apply an Assignment again now (a new
flotilla.dev/reconcile-requested-at value). The agent reports the outcome in the
Assignment's Ready condition; flotilla get assignments --cluster C shows it.`,
		Aliases: []string{"asg"},
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return completeNamesOf(g, "assignments")(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cluster == "" {
				return errors.New("--cluster is required: Assignments live in their cluster's hub namespace")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			a := &fleetv1.Assignment{}
			key := client.ObjectKey{Namespace: fleetv1.ClusterNamespace(cluster), Name: args[0]}
			if err := c.Get(cmd.Context(), key, a); err != nil {
				return fmt.Errorf("Assignment %s: %w", key, err)
			}
			patch, _ := json.Marshal(map[string]any{
				"metadata": map[string]any{"annotations": map[string]string{meta.ReconcileRequestedAtAnnotation: now()}},
			})
			if err := c.Patch(cmd.Context(), a, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return err
			}
			fmt.Fprintf(g.errOut, "✔ reconcile of Assignment %s requested from the agent of %s\n", key, cluster)
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "the cluster the Assignment is for")
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(g))
	return cmd
}
