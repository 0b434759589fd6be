package agentrollout

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
)

func TestAgentVersions(t *testing.T) {
	cluster := func(v string) fleetv1.Cluster {
		var c fleetv1.Cluster
		c.Status.AgentVersion = v
		return c
	}
	got := AgentVersions([]fleetv1.Cluster{cluster("v1.2.0"), cluster("v1.3.0"), cluster(""), cluster("v1.3.0"), cluster("v1.1.0")})
	want := []meta.VersionCount{{Version: "v1.3.0", Clusters: 2}, {Version: "v1.1.0", Clusters: 1}, {Version: "v1.2.0", Clusters: 1}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("AgentVersions (-want +got):\n%s", d)
	}
	var many []fleetv1.Cluster
	for i := range 40 {
		many = append(many, cluster(fmt.Sprintf("v1.%d.0", i)))
	}
	if n := len(AgentVersions(many)); n != meta.MaxVersionCounts {
		t.Errorf("%d entries for 40 versions, want at most %d", n, meta.MaxVersionCounts)
	}
	if got := AgentVersions([]fleetv1.Cluster{cluster("")}); got != nil {
		t.Errorf("no reported version gives %v", got)
	}
}

func TestLostAgents(t *testing.T) {
	cluster := func(name string, ready metav1.ConditionStatus) fleetv1.Cluster {
		c := fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
		conditions.Set(&c, meta.ReadyCondition, ready, "r", "m")
		return c
	}
	asg := func(cluster, digest, applied string, ready metav1.ConditionStatus) fleetv1.Assignment {
		a := fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Name: "ar.flotilla-agent", Labels: map[string]string{fleetv1.ClusterLabel: cluster}}}
		a.Spec.Artifact.Digest, a.Status.AppliedDigest = digest, applied
		conditions.Set(&a, meta.ReadyCondition, ready, "r", "m")
		return a
	}
	clusters := []fleetv1.Cluster{
		cluster("a", metav1.ConditionTrue), cluster("b", metav1.ConditionFalse), cluster("c", metav1.ConditionFalse),
		cluster("d", metav1.ConditionFalse), cluster("e", metav1.ConditionFalse),
	}
	asgs := []fleetv1.Assignment{
		asg("a", "new", "old", metav1.ConditionUnknown), // upgrading, still reporting
		asg("b", "new", "old", metav1.ConditionUnknown), // handed the new agent, then silent
		asg("c", "old", "old", metav1.ConditionTrue),    // silent, but not handed it yet
		asg("d", "new", "new", metav1.ConditionTrue),    // reported the new agent, then went silent
		asg("e", "new", "new", metav1.ConditionFalse),   // the new agent failed, then went silent
	}
	if d := cmp.Diff([]string{"b", "e"}, LostAgents(clusters, asgs, "new")); d != "" {
		t.Errorf("LostAgents (-want +got):\n%s", d)
	}
	failures := addFailures([]meta.ClusterFailure{{Cluster: "e", Message: "refused"}}, []string{"b", "e"}, "no heartbeat")
	if d := cmp.Diff([]meta.ClusterFailure{{Cluster: "e", Message: "refused"}, {Cluster: "b", Message: "no heartbeat"}}, failures); d != "" {
		t.Errorf("addFailures (-want +got):\n%s", d)
	}
}

func TestAssignmentSpec(t *testing.T) {
	s := AssignmentSpec(&meta.Artifact{URL: "https://hub/a", Digest: "sha256:00", Revision: "agent@v1.2.3"}, "v1.2.3")
	// The agent itself applies it (no tenant, no service account), takes over what
	// `flotilla cluster add` installed, never prunes it and never deletes it.
	if s.Tenant != "" || s.ServiceAccountName != "" || s.Prune || !s.Adopt || !s.Wait ||
		s.DeletionPolicy != meta.DeletionPolicyOrphan || s.AgentVersion != "v1.2.3" {
		t.Errorf("AssignmentSpec = %+v", s)
	}
}

func TestOffer(t *testing.T) {
	for _, tc := range []struct{ image, want string }{
		{"registry.example.com/flotilla-agent:v1.4.0", "v1.4.0"},
		{"registry.example.com/flotilla-agent@sha256:0123", version.Version},
	} {
		u := Offer(tc.image)
		if u.GetName() != fleetv1.AgentRolloutName || u.GetKind() != fleetv1.AgentRolloutKind {
			t.Errorf("Offer(%s) names %s %s", tc.image, u.GetKind(), u.GetName())
		}
		spec := u.Object["spec"].(map[string]any)
		if spec["image"] != tc.image || spec["version"] != tc.want || len(spec) != 2 {
			t.Errorf("Offer(%s).spec = %v, want image and version %s only", tc.image, spec, tc.want)
		}
	}
}
