package rollup

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

const (
	cur = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	old = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
)

func asg(cluster, want, applied string, ready metav1.ConditionStatus, msg string, stale bool) fleetv1.Assignment {
	a := fleetv1.Assignment{
		ObjectMeta: metav1.ObjectMeta{Name: "x", Generation: 2, Labels: map[string]string{fleetv1.ClusterLabel: cluster}},
		Spec:       fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: want}},
		Status:     fleetv1.AssignmentStatus{AppliedDigest: applied, ObservedGeneration: 2},
	}
	if ready != "" {
		a.Status.Conditions = []metav1.Condition{{Type: meta.ReadyCondition, Status: ready, Message: msg, ObservedGeneration: 2}}
	}
	if stale {
		a.Status.ObservedGeneration = 1
		if len(a.Status.Conditions) > 0 {
			a.Status.Conditions[0].ObservedGeneration = 1
		}
	}
	return a
}

func TestDeployment(t *testing.T) {
	list := []fleetv1.Assignment{
		asg("a", cur, cur, metav1.ConditionTrue, "ok", false),             // ready
		asg("b", cur, old, metav1.ConditionTrue, "ok", true),              // still on old revision
		asg("c", cur, old, metav1.ConditionFalse, "bad signature", false), // failed, old still runs
		asg("d", cur, cur, metav1.ConditionUnknown, "waiting", false),     // applied, not healthy yet
		asg("e", cur, cur, metav1.ConditionFalse, "unhealthy", false),     // applied and failed
		asg("untargeted", cur, cur, metav1.ConditionFalse, "ignored", false),
	}
	counts, failures := Deployment([]string{"a", "b", "c", "d", "e", "missing"}, list, nil)
	want := meta.ClusterCounts{Targeted: 6, Applied: 3, Ready: 1, Failed: 2}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	wantF := []meta.ClusterFailure{{Cluster: "c", Message: "bad signature"}, {Cluster: "e", Message: "unhealthy"}}
	if diff := cmp.Diff(wantF, failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
}

func TestDeploymentFailuresBounded(t *testing.T) {
	var names []string
	var list []fleetv1.Assignment
	for i := 0; i < 100; i++ {
		n := fmt.Sprintf("c%03d", i)
		names = append(names, n)
		list = append(list, asg(n, cur, "", metav1.ConditionFalse, "boom", false))
	}
	counts, failures := Deployment(names, list, nil)
	if counts.Failed != 100 || len(failures) != meta.MaxFailures || failures[0].Cluster != "c000" {
		t.Fatalf("failed=%d failures=%d first=%v", counts.Failed, len(failures), failures[0])
	}
}

func TestDeploymentSilentClusterIsNotReady(t *testing.T) {
	list := []fleetv1.Assignment{asg("a", cur, cur, metav1.ConditionTrue, "ok", false), asg("b", cur, cur, metav1.ConditionTrue, "ok", false)}
	counts, _ := Deployment([]string{"a", "b"}, list, map[string]bool{"b": true})
	if diff := cmp.Diff(meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 1}, counts); diff != "" {
		t.Error(diff)
	}
}

func TestAssignments(t *testing.T) {
	list := []fleetv1.Assignment{
		asg("a", cur, cur, metav1.ConditionTrue, "", false),
		asg("a", cur, "", metav1.ConditionFalse, "x", false),
		asg("a", cur, "", "", "", false),
	}
	got := Assignments(list)
	if diff := cmp.Diff(meta.AssignmentCounts{Total: 3, Ready: 1, Failed: 1}, got); diff != "" {
		t.Error(diff)
	}
}

// TestVersions: clusters count under the chart version their agent reports (the
// applied revision when there is no release), untargeted and silent-on-version ones
// not at all; most common first, bounded.
func TestVersions(t *testing.T) {
	withVersion := func(cluster, chartVersion, revision string) fleetv1.Assignment {
		a := asg(cluster, cur, cur, metav1.ConditionTrue, "ok", false)
		a.Status.AppliedRevision = revision
		if chartVersion != "" {
			a.Status.Release = &fleetv1.ReleaseStatus{Name: "web", Namespace: "apps", ChartVersion: chartVersion}
		}
		return a
	}
	gone := withVersion("e", "1.0.0", "")
	gone.DeletionTimestamp = &metav1.Time{}
	list := []fleetv1.Assignment{
		withVersion("a", "1.1.0", "1.1.0"),
		withVersion("b", "1.0.0", "1.1.0"), // the release says what runs, not the artifact
		withVersion("c", "", "1.0.0"),
		withVersion("d", "", ""), // nothing reported yet
		gone,
		withVersion("x", "9.9.9", "9.9.9"), // not targeted
		withVersion("f", "1.1.0", "1.1.0"),
		withVersion("g", "0.9.0", "0.9.0"),
	}
	got := Versions([]string{"a", "b", "c", "d", "e", "f", "g"}, list)
	want := []meta.VersionCount{{Version: "1.0.0", Clusters: 2}, {Version: "1.1.0", Clusters: 2}, {Version: "0.9.0", Clusters: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	if got := Versions([]string{"a"}, nil); got != nil {
		t.Errorf("no reports: %v, want nil", got)
	}

	var many []fleetv1.Assignment
	var names []string
	for i := range meta.MaxVersionCounts + 5 {
		c := fmt.Sprintf("c%d", i)
		names = append(names, c)
		many = append(many, withVersion(c, fmt.Sprintf("1.0.%d", i), ""))
	}
	many = append(many, withVersion("top", "1.0.7", ""))
	names = append(names, "top")
	got = Versions(names, many)
	if len(got) != meta.MaxVersionCounts || got[0] != (meta.VersionCount{Version: "1.0.7", Clusters: 2}) {
		t.Errorf("bounded versions: %d entries, first %+v", len(got), got[0])
	}
}
