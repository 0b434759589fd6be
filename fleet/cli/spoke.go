package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/flotilla-dev/flotilla/api"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/agent"
)

// spokeFlags say how the CLI reaches a spoke's API server (diff, tree, trace).
// The first that applies wins:
//  1. --spoke-kubeconfig FILE (its current context, or --spoke-context);
//  2. --fleet-dir D: D/clusters/<cluster>.kubeconfig, as `flotilla dev up --dir D`
//     writes it;
//  3. the context named after the cluster in the hub's kubeconfig file(s).
type spokeFlags struct {
	kubeconfig string
	context    string
	fleetDir   string
	// agentNamespace is the agent's namespace on the spoke, where it keeps its
	// records (tree, diff).
	agentNamespace string
}

func (s *spokeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.kubeconfig, "spoke-kubeconfig", "", "kubeconfig of the spoke (default: --fleet-dir's, else the context named after --cluster)")
	cmd.Flags().StringVar(&s.context, "spoke-context", "", "context in --spoke-kubeconfig")
	cmd.Flags().StringVar(&s.fleetDir, "fleet-dir", "", "folder of a `flotilla dev up --dir` fleet: its clusters/<cluster>.kubeconfig is used")
}

// addAgentNamespace adds --agent-namespace, for commands that read the agent's
// records on the spoke.
func (s *spokeFlags) addAgentNamespace(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.agentNamespace, "agent-namespace", fleetv1.SystemNamespace, "the agent's namespace on the spoke, where it records what it applied")
}

// inventory returns the objects the agent of cluster applied for asg, from the
// agent's record on the spoke (read as the kubeconfig's user: a tenant's identity
// may not read the agent's Secrets), or, from an agent older than that record, from
// the Assignment's status on the hub.
func (s *spokeFlags) inventory(ctx context.Context, g *globals, cluster string, asg *fleetv1.Assignment) ([]fleetv1.InventoryEntry, error) {
	how := fmt.Sprintf("the objects are listed on the spoke; give --spoke-kubeconfig, --fleet-dir, or a kubeconfig context named %q", cluster)
	sc, err := s.client(g, cluster, "")
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, how)
	}
	ns := s.agentNamespace
	if ns == "" {
		ns = fleetv1.SystemNamespace
	}
	entries, found, err := agent.ReadInventory(ctx, sc, ns, asg)
	if err != nil {
		return nil, fmt.Errorf("reading the agent's record of %s in namespace %s on %s: %w (%s, as a user who may read Secrets in %s)", asg.Name, ns, cluster, err, how, ns)
	}
	if !found || len(entries) == 0 {
		return asg.Status.Entries, nil
	}
	return entries, nil
}

// config returns the rest config of cluster's API server, as the kubeconfig's user.
func (s *spokeFlags) config(g *globals, cluster string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	overrides := &clientcmd.ConfigOverrides{}
	switch {
	case s.kubeconfig != "":
		rules.ExplicitPath = s.kubeconfig
		overrides.CurrentContext = s.context
	case s.fleetDir != "":
		p := filepath.Join(s.fleetDir, "clusters", cluster+".kubeconfig")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("spoke %s: %w (is %s a `flotilla dev up --dir` folder?)", cluster, err, s.fleetDir)
		}
		rules.ExplicitPath = p
	default:
		rules.ExplicitPath = g.kubeconfig
		overrides.CurrentContext = cluster
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("spoke %s: %w; give --spoke-kubeconfig, --fleet-dir, or a kubeconfig context named %q", cluster, err, cluster)
	}
	return cfg, nil
}

// client returns a client of cluster's API server acting as user ("" for the
// kubeconfig's own user), with a mapper that discovers kinds as it meets them.
func (s *spokeFlags) client(g *globals, cluster, user string) (client.Client, error) {
	cfg, err := s.config(g, cluster)
	if err != nil {
		return nil, err
	}
	if user != "" {
		cfg = rest.CopyConfig(cfg)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: api.NewScheme(), Mapper: mapper, HTTPClient: httpClient})
}
