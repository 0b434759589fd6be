package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
)

func newRolloutCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Steer a deployment's rollout"}
	approve := &cobra.Command{
		Use:   "approve kustomization NAME",
		Short: "Let a rollout paused after a stage go on",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if k := args[0]; k != "kustomization" && k != "ks" {
				return fmt.Errorf("unknown kind %q: rollouts are steered on kustomizations", k)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ns, _, err := g.clientConfig().Namespace()
			if err != nil {
				return err
			}
			return approveRollout(cmd.Context(), g, c, client.ObjectKey{Namespace: ns, Name: args[1]})
		},
	}
	cmd.AddCommand(approve)
	return cmd
}

// approveRollout approves the stage the rollout is paused after. The annotation takes
// a new value each time, so that one approval never carries over to a later revision.
func approveRollout(ctx context.Context, g *globals, c client.Client, key client.ObjectKey) error {
	var ks deliveryv1.Kustomization
	if err := c.Get(ctx, key, &ks); err != nil {
		return err
	}
	rs := ks.Status.Rollout
	if rs == nil || !rs.Paused || rs.Stage == "" {
		return fmt.Errorf("kustomization %s is not paused at a rollout stage", key)
	}
	patch := client.MergeFrom(ks.DeepCopy())
	if ks.Annotations == nil {
		ks.Annotations = map[string]string{}
	}
	ks.Annotations[deliveryv1.ApprovedStageAnnotation] = rs.Stage + "@" + time.Now().UTC().Format(time.RFC3339Nano)
	if err := c.Patch(ctx, &ks, patch); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "approved stage %s of kustomization %s (revision %s)\n", rs.Stage, key, rs.Revision)
	return nil
}
