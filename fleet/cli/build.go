package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/engine"
	"github.com/flotilla-dev/flotilla/hub/delivery/kustomize"
	"github.com/flotilla-dev/flotilla/spoke/postbuild"
)

// maxLocalSource bounds the files read from a local checkout for one build, as the
// hub bounds a source artifact.
const maxLocalSource = 256 << 20

func newBuildCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "build", Short: "Render locally what the hub would build"}
	var (
		path    string
		cluster string
	)
	ks := &cobra.Command{
		Use:     "kustomization [NAME] --path DIR",
		Aliases: []string{"ks"},
		Short:   "Build a local folder with the hub's kustomize rules and print the manifests",
		Long: `Build a local folder with the rules the hub uses for a Kustomization (in memory,
no remote bases, no URLs, helmCharts refused, a time and size limit) and print the
multi-document YAML the hub would store as the artifact.

DIR is the folder the Kustomization's spec.path names, in a local checkout of its
source. The checkout's root (the nearest folder above DIR holding .git, else DIR) is
what the build may read, so bases such as ../base resolve as on the hub.

postBuild: the hub does not substitute variables; each spoke does, with the
Kustomization's spec.postBuild.substitute, its Cluster's spec.variables and
${cluster_name}. Without --cluster the output keeps its ${var} placeholders, as the
hub's artifact does. With NAME and --cluster C, the placeholders are substituted as
C's agent would, except for spec.postBuild.substituteFrom, which is read on the
spoke (flotilla diff reads it).

The hub's artifact server serves agents only, so the build reads a local checkout
rather than the hub's copy of the source.`,
		Example: `  flotilla build kustomization --path ./apps/podinfo
  flotilla build kustomization podinfo --path ./apps/podinfo --cluster prod-eu-1`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeNamesOf(g, "kustomizations"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return errors.New("--path is required: the folder to build, in a local checkout of the source")
			}
			var k *deliveryv1.Kustomization
			var hub client.Client
			// The hub is read for a named Kustomization only: its overlay fields
			// (namePrefix, patches, images, …) and a cluster's variables.
			if cluster != "" && len(args) == 0 {
				return errors.New("--cluster needs the Kustomization's NAME: its variables come from the hub")
			}
			var ov kustomize.Overlay
			if len(args) > 0 {
				var err error
				if hub, k, err = g.kustomization(cmd.Context(), args[0]); err != nil {
					return err
				}
				ov = kustomize.OverlayOf(&k.Spec)
			}
			out, err := buildLocal(path, ov)
			if err != nil {
				return err
			}
			if cluster != "" {
				vars, note, err := clusterVariables(cmd.Context(), hub, k, cluster)
				if err != nil {
					return err
				}
				if note != "" {
					fmt.Fprintln(g.errOut, note)
				}
				if vars != nil {
					if out, err = substitute(out, vars); err != nil {
						return err
					}
				}
			}
			_, err = g.out.Write(out)
			return err
		},
	}
	ks.Flags().StringVar(&path, "path", "", "the folder to build, in a local checkout of the source")
	_ = ks.MarkFlagDirname("path")
	ks.Flags().StringVar(&cluster, "cluster", "", "substitute the variables this cluster's agent would")
	_ = ks.RegisterFlagCompletionFunc("cluster", completeClusters(g))
	cmd.AddCommand(ks)
	return cmd
}

// kustomization reads Kustomization name in the command's namespace from the hub.
func (g *globals) kustomization(ctx context.Context, name string) (client.Client, *deliveryv1.Kustomization, error) {
	c, err := g.client()
	if err != nil {
		return nil, nil, err
	}
	ns, err := g.ns()
	if err != nil {
		return nil, nil, err
	}
	k := &deliveryv1.Kustomization{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, k); err != nil {
		return nil, nil, notFound(kustomizationKind, client.ObjectKey{Namespace: ns, Name: name}, err)
	}
	return c, k, nil
}

// buildLocal builds dir with the hub's kustomize rules and the Kustomization's
// overlay fields, reading the files of its checkout's root.
func buildLocal(dir string, ov kustomize.Overlay) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("--path %s is not a folder", dir)
	}
	root := checkoutRoot(abs)
	files, err := readTree(root)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return nil, err
	}
	out, err := kustomize.Build(files, filepath.ToSlash(rel), ov)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	return out, nil
}

// checkoutRoot is the nearest folder at or above dir holding .git, else dir.
func checkoutRoot(dir string) string {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dir
		}
		d = parent
	}
}

// readTree reads the regular files below root, as the hub packs a source (no .git).
func readTree(root string) (map[string][]byte, error) {
	files := map[string][]byte{}
	total := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if total += len(b); total > maxLocalSource {
			return fmt.Errorf("%s holds more than %d bytes: point --path into a smaller checkout", root, maxLocalSource)
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	return files, err
}

// clusterVariables are the substitution variables the hub hands cluster's agent for
// k (engine.AssignmentSpecFor), or nil when k has no postBuild. note says what is
// left out.
func clusterVariables(ctx context.Context, hub client.Client, k *deliveryv1.Kustomization, cluster string) (map[string]string, string, error) {
	if k.Spec.PostBuild == nil {
		return nil, "", nil
	}
	var c fleetv1.Cluster
	if err := hub.Get(ctx, client.ObjectKey{Name: cluster}, &c); err != nil {
		return nil, "", fmt.Errorf("Cluster %s: %w", cluster, err)
	}
	spec := engine.AssignmentSpecFor(fleetv1.AssignmentSpec{ApplySettings: meta.ApplySettings{PostBuild: k.Spec.PostBuild.DeepCopy()}}, &c)
	note := ""
	if len(k.Spec.PostBuild.SubstituteFrom) > 0 {
		note = "note: spec.postBuild.substituteFrom is read on the spoke and is not applied here (flotilla diff reads it)"
	}
	return spec.PostBuild.Substitute, note, nil
}

// substitute expands variables in each document of a multi-document YAML as the
// agent does: per document, skipping those that opt out.
func substitute(manifests []byte, vars map[string]string) ([]byte, error) {
	docs, err := splitDocuments(manifests)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for i, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, err
		}
		if !postbuild.Disabled(u) {
			if doc, err = postbuild.SubstituteYAML(doc, vars, postbuild.Options{}); err != nil {
				return nil, fmt.Errorf("substituting variables in %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(bytes.TrimLeft(doc, "\n"))
		if !bytes.HasSuffix(doc, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}

// splitDocuments splits a multi-document YAML, dropping empty documents.
func splitDocuments(b []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufioReader(b))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(strings.TrimSpace(string(doc))) == 0 || strings.TrimSpace(string(doc)) == "---" {
			continue
		}
		docs = append(docs, doc)
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
