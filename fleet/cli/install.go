package cli

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/deploy"
	"github.com/flotilla-dev/flotilla/fleet/images"
)

// Images the install manifests name when nothing else is asked for.
const (
	DefaultRegistry = "ghcr.io/flotilla-dev"
	// HubContainer is the hub's container in its Deployment.
	HubContainer = "hub"
	// HubDeployment and HubServiceAccount are in the system namespace.
	HubDeployment     = "flotilla-hub"
	HubServiceAccount = "flotilla-hub"
	// InstallFieldOwner is the server-side apply field manager of `flotilla install`.
	InstallFieldOwner = "flotilla-install"
)

// InstallOptions say what `flotilla install` changes in the hub's base (deploy/hub).
type InstallOptions struct {
	// Image of the hub; <registry>/flotilla-hub:<version> when empty.
	Image string
	// AgentImage the hub installs into Cluster API clusters; the hub's own default
	// (this release's public image) when empty and Registry is too.
	AgentImage string
	// Registry prefixes both images when they are not given.
	Registry string
	// Version is the images' tag; this CLI's version when empty.
	Version string
	// HubServer and ArtifactURL are where spokes reach the hub's API server and
	// artifact server; the hub's defaults (its in-cluster address, its listener)
	// when empty.
	HubServer   string
	ArtifactURL string
	// ArtifactServiceType is the type of the Service flotilla-artifacts (e.g.
	// LoadBalancer); the base's (ClusterIP) when empty.
	ArtifactServiceType string
}

// ArtifactService is the Service of the hub's artifact server.
const ArtifactService = "flotilla-artifacts"

func (o InstallOptions) images() (hub, agent string) {
	v := o.Version
	if v == "" {
		v = version.Version
	}
	reg := strings.TrimSuffix(o.Registry, "/")
	if reg == "" {
		reg = DefaultRegistry
	}
	hub, agent = o.Image, o.AgentImage
	if hub == "" {
		hub = reg + "/" + images.Hub.Name + ":" + images.Tag(v)
	}
	if agent == "" && o.Registry != "" {
		agent = reg + "/" + images.Agent.Name + ":" + images.Tag(v)
	}
	return hub, agent
}

// BuildKustomization runs kustomize (krusty) on a folder of deploy.Kustomizations,
// as `kustomize build deploy/<dir>` does on a checkout.
func BuildKustomization(dir string) ([]*unstructured.Unstructured, error) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(deploy.Kustomizations, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := deploy.Kustomizations.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/deploy", p), b)
	})
	if err != nil {
		return nil, err
	}
	return RunKustomize(mem, path.Join("/deploy", dir))
}

// RunKustomize builds the kustomization at dir of fsys into objects, in
// kustomize's output order.
func RunKustomize(fsys filesys.FileSystem, dir string) ([]*unstructured.Unstructured, error) {
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// HubManifests are the hub's install objects: the embedded deploy/hub, built by
// kustomize, with the images and addresses of opts.
func HubManifests(opts InstallOptions) ([]*unstructured.Unstructured, error) {
	objs, err := BuildKustomization(deploy.HubKustomization)
	if err != nil {
		return nil, err
	}
	hubImage, agentImage := opts.images()
	var args []string
	if agentImage != "" {
		args = append(args, "--agent-image="+agentImage)
	}
	if opts.HubServer != "" {
		args = append(args, "--hub-server="+opts.HubServer)
	}
	if opts.ArtifactURL != "" {
		args = append(args, "--artifact-base-url="+opts.ArtifactURL)
	}
	found := false
	for _, o := range objs {
		if o.GetKind() == "Service" && o.GetName() == ArtifactService && opts.ArtifactServiceType != "" {
			if err := unstructured.SetNestedField(o.Object, opts.ArtifactServiceType, "spec", "type"); err != nil {
				return nil, err
			}
		}
		if o.GetKind() != "Deployment" || o.GetName() != HubDeployment {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for i, c := range containers {
			cm, ok := c.(map[string]any)
			if !ok || cm["name"] != HubContainer {
				continue
			}
			found = true
			cm["image"] = hubImage
			if len(args) > 0 {
				old, _, _ := unstructured.NestedStringSlice(cm, "args")
				all := make([]any, 0, len(old)+len(args))
				for _, a := range append(old, args...) {
					all = append(all, a)
				}
				cm["args"] = all
			}
			containers[i] = cm
		}
		if err := unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers"); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("deploy/hub has no Deployment %s with a container %s", HubDeployment, HubContainer)
	}
	return objs, nil
}

// MarshalManifests writes objects as multi-document YAML.
func MarshalManifests(objs []*unstructured.Unstructured) ([]byte, error) {
	var buf bytes.Buffer
	for i, o := range objs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// ApplyManifests server-side applies objects in order, taking over fields others
// set, as `kubectl apply --server-side --force-conflicts` does.
func ApplyManifests(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner(InstallFieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

func newInstallCommand(g *globals) *cobra.Command {
	var opts InstallOptions
	var export bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install or upgrade the hub (CRDs, RBAC, Deployment, Services) on the cluster of --kubeconfig",
		Long: `Applies the hub's install manifests (deploy/hub, built into this binary) with
server-side apply: the flotilla-system namespace, the CRDs, the hub's ServiceAccount and
the least RBAC it needs, its Deployment and the Services of its artifact server and
metrics. Running it again upgrades. With --export the manifests are printed instead, to
commit them or to overlay them with kustomize.

Spokes must reach two addresses of the hub: its API server (--hub-server; by default the
server of --kubeconfig) and its artifact server (--artifact-url; expose the Service
flotilla-artifacts, e.g. as a LoadBalancer, at that address).`,
		Example: `  flotilla install --registry registry.example.com/flotilla --artifact-url https://flotilla.example.com:9090
  flotilla install --export > hub.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !export && opts.HubServer == "" {
				cfg, err := g.restConfig()
				if err != nil {
					return err
				}
				opts.HubServer = strings.TrimSuffix(cfg.Host, "/")
			}
			objs, err := HubManifests(opts)
			if err != nil {
				return err
			}
			if export {
				b, err := MarshalManifests(objs)
				if err != nil {
					return err
				}
				_, err = g.out.Write(b)
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := ApplyManifests(cmd.Context(), c, objs); err != nil {
				return err
			}
			hubImage, _ := opts.images()
			fmt.Fprintf(g.out, "hub installed: %d objects applied, image %s\n", len(objs), hubImage)
			fmt.Fprintln(g.out, "`flotilla check` tells when it is ready")
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&export, "export", false, "print the manifests instead of applying them")
	f.StringVar(&opts.Image, "image", "", "hub image (default <registry>/flotilla-hub:<version>)")
	f.StringVar(&opts.AgentImage, "agent-image", "", "agent image the hub installs into Cluster API clusters (default <registry>/flotilla-agent:<version> when --registry is set)")
	f.StringVar(&opts.Registry, "registry", "", "registry and repository prefix of both images (default "+DefaultRegistry+")")
	f.StringVar(&opts.Version, "version", "", "tag of the images (default this CLI's version, "+version.Version+")")
	f.StringVar(&opts.HubServer, "hub-server", "", "address spokes reach the hub's API server at (default the server of --kubeconfig; not set with --export)")
	f.StringVar(&opts.ArtifactURL, "artifact-url", "", "https:// address spokes reach the hub's artifact server at (the Service flotilla-artifacts, port 9090)")
	f.StringVar(&opts.ArtifactServiceType, "artifact-service-type", "", "type of the Service flotilla-artifacts, e.g. LoadBalancer (default ClusterIP)")
	return cmd
}
