package agentrollout

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

func TestRender(t *testing.T) {
	const image = "registry.example.com/flotilla/flotilla-agent:v1.2.3"
	out, err := Render(image)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "kind:"); n != 1 {
		t.Fatalf("want the Deployment only, got %d kinds:\n%s", n, out)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(out, &d); err != nil {
		t.Fatal(err)
	}
	if d.Namespace != fleetv1.SystemNamespace || d.Name != DeploymentName {
		t.Errorf("Deployment %s/%s", d.Namespace, d.Name)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q: two agents would run at once", d.Spec.Strategy.Type)
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Image != image {
		t.Fatalf("containers %+v, want one with image %s", cs, image)
	}
	if want := "--bootstrap"; len(cs[0].Args) == 0 || cs[0].Args[0] != want {
		t.Errorf("args %v changed", cs[0].Args)
	}
	if strings.Contains(string(out), "creationTimestamp") || strings.Contains(string(out), "status") {
		t.Errorf("rendered fields the base does not set:\n%s", out)
	}
	if _, err := Render(""); err == nil {
		t.Error("Render(\"\") succeeded")
	}
}
