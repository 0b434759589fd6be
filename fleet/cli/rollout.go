package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// rolloutKind is a deployment kind whose rollout `flotilla rollout` steers; every
// deployment kind shares the Rollout type, so only reading its status differs.
type rolloutKind struct {
	names   []string
	noun    string
	newObj  func() client.Object
	rollout func(client.Object) *deliveryv1.RolloutStatus
}

var rolloutKinds = []rolloutKind{
	{
		names: []string{"kustomization", "kustomizations", "ks"}, noun: "kustomization",
		newObj:  func() client.Object { return &deliveryv1.Kustomization{} },
		rollout: func(o client.Object) *deliveryv1.RolloutStatus { return o.(*deliveryv1.Kustomization).Status.Rollout },
	},
	{
		names: []string{"helmrelease", "helmreleases", "hr"}, noun: "helmrelease",
		newObj:  func() client.Object { return &deliveryv1.HelmRelease{} },
		rollout: func(o client.Object) *deliveryv1.RolloutStatus { return o.(*deliveryv1.HelmRelease).Status.Rollout },
	},
	{
		// Cluster-scoped: the namespace flag is ignored.
		names: []string{"agentrollout", "agentrollouts", "ar"}, noun: "agentrollout",
		newObj:  func() client.Object { return &fleetv1.AgentRollout{} },
		rollout: func(o client.Object) *deliveryv1.RolloutStatus { return o.(*fleetv1.AgentRollout).Status.Rollout },
	},
}

func findRolloutKind(name string) (rolloutKind, error) {
	var known []string
	for _, k := range rolloutKinds {
		for _, n := range k.names {
			if strings.EqualFold(n, name) {
				return k, nil
			}
		}
		known = append(known, k.noun)
	}
	return rolloutKind{}, fmt.Errorf("unknown kind %q: rollouts are steered on %s", name, strings.Join(known, " and "))
}

func newRolloutCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Steer a deployment's rollout"}
	approve := &cobra.Command{
		Use:   "approve kustomization|helmrelease|agentrollout NAME",
		Short: "Let a rollout paused after a stage go on",
		Example: `  flotilla rollout approve kustomization web -n apps
  flotilla rollout approve hr podinfo
  flotilla rollout approve agentrollout flotilla-agent`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := findRolloutKind(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ns, err := g.ns()
			if err != nil {
				return err
			}
			return approveRollout(cmd.Context(), g, c, k, client.ObjectKey{Namespace: ns, Name: args[1]})
		},
	}
	cmd.AddCommand(approve)
	return cmd
}

// approveRollout approves the stage the rollout is paused after. The annotation takes
// a new value each time, so that one approval never carries over to a later revision.
func approveRollout(ctx context.Context, g *globals, c client.Client, k rolloutKind, key client.ObjectKey) error {
	obj := k.newObj()
	if err := c.Get(ctx, key, obj); err != nil {
		return err
	}
	rs := k.rollout(obj)
	if rs == nil || !rs.Paused || rs.Stage == "" {
		return fmt.Errorf("%s %s is not paused at a rollout stage", k.noun, key)
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[deliveryv1.ApprovedStageAnnotation] = rs.Stage + "@" + time.Now().UTC().Format(time.RFC3339Nano)
	obj.SetAnnotations(annotations)
	if err := c.Patch(ctx, obj, patch); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "approved stage %s of %s %s (revision %s)\n", rs.Stage, k.noun, key, rs.Revision)
	return nil
}
