package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/flotilla-dev/flotilla/fleet/cli"
	hubreg "github.com/flotilla-dev/flotilla/hub/registration"
)

// baseHubImage is the image deploy/hub names before any overlay.
const baseHubImage = "ghcr.io/flotilla-dev/flotilla-hub:latest"

// kustomizeOnDisk is `kustomize build deploy/<dir>` of this checkout.
func kustomizeOnDisk(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("..", "..", "deploy", dir))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := cli.RunKustomize(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// byKey indexes objects by kind, namespace and name, their numbers as the API
// machinery decodes them (int64), whoever decoded them.
func byKey(objs []*unstructured.Unstructured) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, o := range objs {
		b, err := json.Marshal(o.Object)
		if err != nil {
			panic(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			panic(err)
		}
		m[o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName()] = u.Object
	}
	return m
}

// TestHubManifestsAreTheKustomization: what `flotilla install` applies is kustomize's
// build of deploy/hub as checked in (the embedded copy is not stale), changed only
// where the flags say.
func TestHubManifestsAreTheKustomization(t *testing.T) {
	onDisk := kustomizeOnDisk(t, "hub")
	applied, err := cli.HubManifests(cli.InstallOptions{Image: baseHubImage})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(byKey(onDisk), byKey(applied)); diff != "" {
		t.Fatalf("flotilla install differs from kustomize build deploy/hub (-kustomize +install):\n%s", diff)
	}
	var kinds []string
	for _, o := range onDisk {
		kinds = append(kinds, o.GetKind())
	}
	for _, want := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("deploy/hub has no %s", want)
		}
	}

	custom, err := cli.HubManifests(cli.InstallOptions{Registry: "registry.example.com/flotilla", Version: "v1.2.3",
		HubServer: "https://hub.example.com:6443", ArtifactURL: "https://flotilla.example.com:9090", ArtifactServiceType: "LoadBalancer"})
	if err != nil {
		t.Fatal(err)
	}
	if typ := byKey(custom)["Service flotilla-system/"+cli.ArtifactService]["spec"].(map[string]any)["type"]; typ != "LoadBalancer" {
		t.Errorf("artifact Service type %v, want LoadBalancer", typ)
	}
	c := hubContainer(t, custom)
	if c["image"] != "registry.example.com/flotilla/flotilla-hub:v1.2.3" {
		t.Errorf("image %v", c["image"])
	}
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	for _, want := range []string{"--agent-image=registry.example.com/flotilla/flotilla-agent:v1.2.3", "--hub-server=https://hub.example.com:6443", "--artifact-base-url=https://flotilla.example.com:9090"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
}

func hubContainer(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" && o.GetName() == cli.HubDeployment {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			return cs[0].(map[string]any)
		}
	}
	t.Fatal("no hub Deployment")
	return nil
}

// TestCRDKustomizationListsEveryCRD: deploy/crds/kustomization.yaml (make generate)
// names every generated CRD, so the hub's install has them all.
func TestCRDKustomizationListsEveryCRD(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "crds", "*_*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := kustomizeOnDisk(t, "crds")
	if len(objs) != len(files) || len(objs) == 0 {
		t.Fatalf("deploy/crds/kustomization.yaml builds %d CRDs, the folder has %d files: run make generate", len(objs), len(files))
	}
}

// TestAgentBaseIsTheTemplate: the agent's kustomize base holds what `flotilla
// cluster add` installs, less the cluster's bootstrap Secret.
func TestAgentBaseIsTheTemplate(t *testing.T) {
	base := kustomizeOnDisk(t, "agent")
	rendered, err := hubreg.InstallObjects(hubreg.InstallValues{Cluster: "c", Token: "t", RegistrationURL: "https://hub/register",
		HubServer: "https://hub", Image: "ghcr.io/flotilla-dev/flotilla-agent:latest"})
	if err != nil {
		t.Fatal(err)
	}
	var template []*unstructured.Unstructured
	for _, o := range rendered {
		if o.GetKind() != "Secret" {
			template = append(template, o)
		}
	}
	if diff := cmp.Diff(byKey(template), byKey(base)); diff != "" {
		t.Fatalf("deploy/agent's base differs from agent.yaml.tmpl (-template +base):\n%s", diff)
	}
}

// TestHubDeploymentHardened: the hub runs as non-root on a read-only root with no
// capabilities, probed on its health port.
func TestHubDeploymentHardened(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "hub", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"runAsNonRoot: true", "readOnlyRootFilesystem: true", "drop: [\"ALL\"]", "type: RuntimeDefault", "allowPrivilegeEscalation: false", "livenessProbe:", "readinessProbe:"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("deploy/hub/deployment.yaml lacks %s", want)
		}
	}
}
