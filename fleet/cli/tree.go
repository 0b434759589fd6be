package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/apply"
)

func newTreeCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tree", Short: "List the objects a deployment manages on a cluster"}
	for _, d := range []struct {
		use, kind, kindName string
		aliases             []string
	}{
		{"kustomization", deliveryv1.KustomizationKind, "kustomizations", []string{"ks"}},
		{"helmrelease", deliveryv1.HelmReleaseKind, "helmreleases", []string{"hr"}},
	} {
		var (
			cluster string
			spoke   spokeFlags
		)
		c := &cobra.Command{
			Use:     d.use + " NAME --cluster C",
			Aliases: d.aliases,
			Short:   "List the objects a " + d.kind + " manages on one cluster",
			Long: `List the objects a ` + d.kind + ` manages on cluster C, from the inventory its agent
records on the spoke (a Secret in the agent's namespace, --agent-namespace; the hub
keeps only the count). The spoke is reached with --spoke-kubeconfig, --fleet-dir (a
flotilla dev up folder) or a kubeconfig context named after C, as a user who may read
Secrets there. An agent older than that record reported the list in the Assignment's
status on the hub, which is shown then. For a HelmRelease the inventory is the Helm
release: its name, namespace and revision are shown from the hub (the spoke is not
contacted); helm get manifest lists its objects.`,
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: completeNamesOf(g, d.kindName),
			RunE: func(cmd *cobra.Command, args []string) error {
				if cluster == "" {
					return errors.New("--cluster is required")
				}
				hub, err := g.client()
				if err != nil {
					return err
				}
				ns, err := g.ns()
				if err != nil {
					return err
				}
				asg, err := assignmentFor(cmd.Context(), hub, d.kind, ns, args[0], cluster)
				if err != nil {
					return err
				}
				rev := asg.Status.AppliedRevision
				if rev == "" {
					rev = "nothing applied yet"
				}
				fmt.Fprintf(g.out, "%s/%s/%s on %s (%s)\n", d.kind, ns, args[0], cluster, rev)
				if r := asg.Status.Release; r != nil {
					fmt.Fprintf(g.out, "└── HelmRelease %s/%s revision %d %s (chart %s)\n", r.Namespace, r.Name, r.Revision, r.Status, r.ChartVersion)
					return nil
				}
				entries, err := spoke.inventory(cmd.Context(), g, cluster, asg)
				if err != nil {
					return err
				}
				for i, e := range entries {
					branch := "├── "
					if i == len(entries)-1 {
						branch = "└── "
					}
					name := e.ID
					if ref, err := apply.ParseEntry(e); err == nil {
						name = ref.String()
					}
					fmt.Fprintln(g.out, branch+name)
				}
				if len(entries) == 0 {
					msg := "no objects reported"
					if r := apimeta.FindStatusCondition(asg.Status.Conditions, meta.ReadyCondition); r != nil && r.Message != "" {
						msg += ": " + r.Message
					}
					fmt.Fprintln(g.out, "└── ("+msg+")")
				}
				return nil
			},
		}
		c.Flags().StringVar(&cluster, "cluster", "", "the cluster whose objects to list")
		_ = c.RegisterFlagCompletionFunc("cluster", completeClusters(g))
		spoke.add(c)
		spoke.addAgentNamespace(c)
		cmd.AddCommand(c)
	}
	return cmd
}
