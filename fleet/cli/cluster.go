package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/hub/registration"
)

// clusterFlags are shared by the cluster subcommands. In them --kubeconfig is the
// spoke's (as `flotilla cluster add NAME --kubeconfig spoke.kubeconfig` reads), so
// the hub's comes from --hub-kubeconfig.
type clusterFlags struct {
	g               *globals
	hubKubeconfig   string
	spokeKubeconfig string
	spokeContext    string
	systemNamespace string
	bootstrapSecret bool
}

func (f *clusterFlags) bind(cmd *cobra.Command, spoke bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.hubKubeconfig, "hub-kubeconfig", "", "kubeconfig of the hub (default $KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.systemNamespace, "system-namespace", manager.DefaultSystemNamespace, "the hub's system namespace")
	if spoke {
		fl.StringVar(&f.spokeKubeconfig, "kubeconfig", "", "kubeconfig of the spoke: apply to it instead of printing the manifests")
		fl.StringVar(&f.spokeContext, "spoke-context", "", "context in the spoke's kubeconfig")
		fl.BoolVar(&f.bootstrapSecret, "bootstrap-secret", false, "print only the bootstrap Secret, for an agent installed from the kustomize base deploy/agent")
	}
}

func (f *clusterFlags) hub() (client.Client, error) {
	if f.hubKubeconfig != "" {
		f.g.kubeconfig = f.hubKubeconfig
	} else if f.spokeKubeconfig != "" {
		f.g.kubeconfig = "" // the flag named the spoke, not the hub
	}
	return f.g.client()
}

func (f *clusterFlags) spoke() (client.Client, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: f.spokeKubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.spokeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("spoke kubeconfig: %w", err)
	}
	// `flotilla --kubeconfig hub.kubeconfig cluster add …` sets this command's
	// --kubeconfig, which names the spoke: installing an agent into the hub would be
	// the wrong cluster, so refuse.
	if hub, err := f.g.restConfig(); err == nil && strings.TrimSuffix(hub.Host, "/") == strings.TrimSuffix(cfg.Host, "/") {
		return nil, fmt.Errorf("--kubeconfig names the spoke in cluster commands, and %s is the hub (%s); name the hub with --hub-kubeconfig", f.spokeKubeconfig, cfg.Host)
	}
	return client.New(cfg, client.Options{Scheme: api.NewScheme()})
}

func newClusterCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cluster",
		Aliases: []string{"clusters", "fcluster"},
		Short:   "Register spokes, rotate or revoke their credentials, remove them",
	}
	cmd.AddCommand(newClusterAddCommand(g), newClusterRotateCommand(g), newClusterRevokeCommand(g), newClusterRemoveCommand(g))
	return cmd
}

func newClusterAddCommand(g *globals) *cobra.Command {
	f := &clusterFlags{g: g}
	var labels []string
	var ttl time.Duration
	var image string
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Register a cluster and print (or, with --kubeconfig, apply) what installs its agent",
		Long: `Creates the fleet Cluster NAME with the given labels and a single-use bootstrap
token, valid for --ttl. The install manifests carry the token; the agent trades it for
its own credential, which reaches only the cluster's hub namespace.`,
		Example: `  flotilla cluster add prod-eu-1 --label env=prod --label region=eu > agent.yaml
  flotilla cluster add prod-eu-1 --label env=prod --kubeconfig prod-eu-1.kubeconfig`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			return f.install(cmd.Context(), args[0], lbls, ttl, image, "registered")
		},
	}
	f.bind(cmd, true)
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "label of the Cluster, k=v (repeatable)")
	cmd.Flags().DurationVar(&ttl, "ttl", registration.DefaultTokenTTL, "how long the bootstrap token stays valid")
	cmd.Flags().StringVar(&image, "image", "", "agent image (default: the image the hub's AgentRollout offers, else "+registration.DefaultAgentImage+")")
	return cmd
}

func newClusterRotateCommand(g *globals) *cobra.Command {
	f := &clusterFlags{g: g}
	var ttl time.Duration
	var image string
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Revoke a cluster's credential and issue a new bootstrap token",
		Long: `Revokes the cluster's hub credential at once and issues a new bootstrap token.
With --kubeconfig the new token is applied to the spoke, where the running agent notices
that its credential is refused and registers again; without, the manifests are printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hub, err := f.hub()
			if err != nil {
				return err
			}
			if err := existingCluster(cmd.Context(), hub, args[0]); err != nil {
				return err
			}
			if err := registration.Revoke(cmd.Context(), hub, f.systemNamespace, args[0]); err != nil {
				return err
			}
			return f.install(cmd.Context(), args[0], nil, ttl, image, "rotated")
		},
	}
	f.bind(cmd, true)
	cmd.Flags().DurationVar(&ttl, "ttl", registration.DefaultTokenTTL, "how long the bootstrap token stays valid")
	cmd.Flags().StringVar(&image, "image", "", "agent image (default: the image the hub's AgentRollout offers, else "+registration.DefaultAgentImage+")")
	return cmd
}

func newClusterRevokeCommand(g *globals) *cobra.Command {
	f := &clusterFlags{g: g}
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a cluster's hub credential: its agent can no longer read or write anything",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hub, err := f.hub()
			if err != nil {
				return err
			}
			if err := registration.Revoke(cmd.Context(), hub, f.systemNamespace, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "cluster %s: credential revoked; `flotilla cluster rotate %s` lets its agent register again\n", args[0], args[0])
			return nil
		},
	}
	f.bind(cmd, false)
	return cmd
}

func newClusterRemoveCommand(g *globals) *cobra.Command {
	f := &clusterFlags{g: g}
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Deregister a cluster; with --kubeconfig also remove its agent from the spoke",
		Long: `Deletes the fleet Cluster (the hub then deletes its namespace, Assignments and
credential) and, with --kubeconfig, the agent and its credentials from the spoke. What
the agent applied stays on the spoke.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			hub, err := f.hub()
			if err != nil {
				return err
			}
			name := args[0]
			err = hub.Delete(ctx, &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}})
			if apierrors.IsNotFound(err) {
				fmt.Fprintf(g.errOut, "cluster %s was not registered\n", name)
			} else if err != nil {
				return err
			}
			// At once, rather than when the namespace finally goes.
			if err := registration.Revoke(ctx, hub, f.systemNamespace, name); err != nil {
				return err
			}
			if f.spokeKubeconfig != "" {
				spoke, err := f.spoke()
				if err != nil {
					return err
				}
				if err := registration.Uninstall(ctx, spoke); err != nil {
					return fmt.Errorf("remove the agent from the spoke: %w", err)
				}
			}
			fmt.Fprintf(g.out, "cluster %s removed\n", name)
			return nil
		},
	}
	f.bind(cmd, true)
	return cmd
}

// install issues a token for the cluster and prints or applies its manifests.
func (f *clusterFlags) install(ctx context.Context, name string, labels map[string]string, ttl time.Duration, image, done string) error {
	hub, err := f.hub()
	if err != nil {
		return err
	}
	vals, err := registration.PrepareCluster(ctx, hub, f.systemNamespace, name, labels, ttl)
	if err != nil {
		return err
	}
	if vals.Image, err = agentImage(ctx, hub, image, f.g.errOut); err != nil {
		return err
	}
	if f.spokeKubeconfig == "" {
		y, err := registration.RenderInstall(vals)
		if err != nil {
			return err
		}
		if f.bootstrapSecret {
			if y, err = bootstrapSecretOnly(vals); err != nil {
				return err
			}
		}
		_, err = f.g.out.Write(y)
		fmt.Fprintf(f.g.errOut, "cluster %s %s; apply the manifests above to it before %s\n", name, done, vals.Expires.Local().Format(time.RFC1123))
		return err
	}
	spoke, err := f.spoke()
	if err != nil {
		return err
	}
	if err := registration.ApplyInstall(ctx, spoke, vals); err != nil {
		return fmt.Errorf("install the agent: %w", err)
	}
	fmt.Fprintf(f.g.out, "cluster %s %s; agent installed, it registers with a token valid until %s\n", name, done, vals.Expires.Local().Format(time.RFC1123))
	return nil
}

// agentImage is the image to install: the one asked for, else the one the hub's
// AgentRollout offers the fleet (so that a new or rotated cluster does not start an
// agent the rollout then replaces, and the two never pull the Deployment back and
// forth), else the default. Asking for another image than the rollout's is allowed,
// with a warning: the agent will move to the rollout's image once it runs.
// A user who may not read the AgentRollout gets the image asked for or the default.
func agentImage(ctx context.Context, hub client.Client, asked string, warn io.Writer) (string, error) {
	var ar fleetv1.AgentRollout
	err := hub.Get(ctx, client.ObjectKey{Name: fleetv1.AgentRolloutName}, &ar)
	switch {
	case apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err) || apierrors.IsForbidden(err):
		ar.Spec.Image = ""
	case err != nil:
		return "", fmt.Errorf("reading the AgentRollout %s: %w", fleetv1.AgentRolloutName, err)
	}
	switch {
	case asked == "" && ar.Spec.Image != "":
		return ar.Spec.Image, nil
	case asked == "":
		return registration.DefaultAgentImage, nil
	case ar.Spec.Image != "" && asked != ar.Spec.Image:
		fmt.Fprintf(warn, "warning: the AgentRollout %s offers %s to the fleet; this agent (%s) will be moved to it once it runs\n",
			fleetv1.AgentRolloutName, ar.Spec.Image, asked)
	}
	return asked, nil
}

func existingCluster(ctx context.Context, hub client.Client, name string) error {
	err := hub.Get(ctx, client.ObjectKey{Name: name}, &fleetv1.Cluster{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("cluster %s is not registered: use `flotilla cluster add %s`", name, name)
	}
	return err
}

func parseLabels(in []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range in {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		lbl := metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
		if _, err := metav1.LabelSelectorAsSelector(&lbl); err != nil {
			return nil, fmt.Errorf("label %q: %w", kv, err)
		}
		out[k] = v
	}
	return out, nil
}

// bootstrapSecretOnly is the bootstrap Secret of the agent's install, alone.
func bootstrapSecretOnly(vals registration.InstallValues) ([]byte, error) {
	objs, err := registration.InstallObjects(vals)
	if err != nil {
		return nil, err
	}
	var secrets []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			secrets = append(secrets, o)
		}
	}
	return MarshalManifests(secrets)
}
