package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api"
)

// globals are the flags every command reads.
type globals struct {
	kubeconfig string
	context    string
	namespace  string

	out, errOut io.Writer
}

// NewRootCommand returns the flotilla command with all its subcommands.
func NewRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "flotilla",
		Short: "Manage a Flotilla fleet: a hub that delivers GitOps deployments to many clusters",
		// Errors are printed once by main; usage only helps when the flags are wrong.
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			g.out, g.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig of the hub (default $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&g.context, "context", "", "kubeconfig context to use")
	f.StringVarP(&g.namespace, "namespace", "n", "", "namespace (default: the context's, else default)")

	root.AddCommand(
		newDevCommand(g),
		newClusterCommand(g),
		newStatusCommand(g),
		newGetCommand(g),
		newReconcileCommand(g),
		newSuspendCommand(g),
		newResumeCommand(g),
		newVersionCommand(g),
		newKeysCommand(g),
		newRolloutCommand(g),
		newInstallCommand(g),
		newCheckCommand(g),
		newExportCommand(g),
		newBuildCommand(g),
		newDiffCommand(g),
		newTreeCommand(g),
		newTraceCommand(g),
		newEventsCommand(g),
	)
	return root
}

func (g *globals) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = g.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: g.context}
	overrides.Context.Namespace = g.namespace
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

func (g *globals) restConfig() (*rest.Config, error) {
	cfg, err := g.clientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("hub kubeconfig: %w", err)
	}
	// client-go's default of 5 requests per second is for controllers; a command
	// that discovers the API and then polls would spend its --timeout in the
	// client's own rate limiter instead of on the server.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	return cfg, nil
}

// client is a hub client that knows the Flotilla kinds.
func (g *globals) client() (client.Client, error) {
	cfg, err := g.restConfig()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: api.NewScheme()})
}

// ns is the namespace of namespaced objects: --namespace, the context's, or default.
func (g *globals) ns() (string, error) {
	ns, _, err := g.clientConfig().Namespace()
	if err != nil {
		return "", fmt.Errorf("hub kubeconfig: %w", err)
	}
	return ns, nil
}
