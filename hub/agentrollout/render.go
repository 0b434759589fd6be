package agentrollout

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/deploy"
)

// DeploymentName is the agent's Deployment on every spoke (deploy/agent), in the
// system namespace.
const DeploymentName = "flotilla-agent"

// containerName is the agent's container in that Deployment.
const containerName = "agent"

// Render returns the agent's Deployment from the embedded deploy/agent base with its
// container image set to image, as one YAML document. Everything else (args,
// strategy Recreate, probes, security context) stays as the base has it, so a
// cluster installed by `flotilla cluster add` only changes its image.
func Render(image string) ([]byte, error) {
	if image == "" {
		return nil, errors.New("no image")
	}
	base, err := deploy.Kustomizations.ReadFile(deploy.AgentKustomization + "/agent.yaml")
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(base), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("deploy/agent has no Deployment %s", DeploymentName)
			}
			return nil, fmt.Errorf("reading deploy/agent: %w", err)
		}
		if u.GetKind() != "Deployment" || u.GetName() != DeploymentName {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		found := false
		for i, c := range containers {
			if m, ok := c.(map[string]any); ok && m["name"] == containerName {
				m["image"], found = image, true
				containers[i] = m
			}
		}
		if !found {
			return nil, fmt.Errorf("deploy/agent's Deployment has no container %q", containerName)
		}
		if err := unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"); err != nil {
			return nil, err
		}
		return yaml.Marshal(u.Object)
	}
}
