package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/conditions"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

const (
	testDigest   = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	testRevision = "main@sha1:0000000000000000000000000000000000000001"
)

func testCluster(name string, labels, vars map[string]string) *fleetv1.Cluster {
	c := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	c.Spec.Variables = vars
	c.Status.Namespace = fleetv1.ClusterNamespace(name)
	conditions.MarkReady(c, meta.SucceededReason, "heartbeat")
	return c
}

func testOwner() *deliveryv1.Kustomization {
	return &deliveryv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web", UID: "uid-web"}}
}

func testDeployment(ks *deliveryv1.Kustomization) Deployment {
	return Deployment{
		Owner: ks, Kind: deliveryv1.KustomizationKind,
		Spec: fleetv1.AssignmentSpec{
			Artifact:      fleetv1.SignedArtifact{URL: "https://hub/a.tar.gz", Digest: testDigest, Signature: "sig", Revision: testRevision},
			Prune:         true,
			ApplySettings: meta.ApplySettings{PostBuild: &meta.PostBuild{Substitute: map[string]string{"tier": "web", "region": "default"}}},
			DependsOn:     []string{"ks.apps.db"},
		},
		Placement:     ks.Spec.Placement,
		Rollout:       ks.Spec.Rollout,
		RolloutStatus: &ks.Status.Rollout,
	}
}

func newEngine(objs ...client.Object) (*Engine, client.Client, *events.FakeRecorder) {
	c := fake.NewClientBuilder().WithScheme(api.NewScheme()).
		WithStatusSubresource(&fleetv1.Assignment{}, &fleetv1.Cluster{}).WithObjects(objs...).Build()
	rec := events.NewFakeRecorder(16)
	return &Engine{Client: c, Recorder: rec, Sign: testSign}, c, rec
}

func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func getAssignment(t *testing.T, c client.Client, cluster string) (*fleetv1.Assignment, error) {
	t.Helper()
	var a fleetv1.Assignment
	err := c.Get(context.Background(), types.NamespacedName{Namespace: fleetv1.ClusterNamespace(cluster), Name: "ks.apps.web"}, &a)
	return &a, err
}

// TestDeployAssignsAndUnassigns: targeted clusters get their specialised Assignment,
// an untargeted cluster loses its own, and the owner's status tells the rollup.
func TestDeployAssignsAndUnassigns(t *testing.T) {
	ctx := context.Background()
	ks := testOwner()
	ks.Spec.Placement = deliveryv1.Placement{
		ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		ClusterGroups:   []string{"gone"},
	}
	stale := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("dev"), Name: "ks.apps.web",
		Labels: map[string]string{fleetv1.OwnerKindLabel: deliveryv1.KustomizationKind, fleetv1.OwnerNamespaceLabel: "apps",
			fleetv1.OwnerNameLabel: "web", fleetv1.ClusterLabel: "dev"}}}
	e, c, rec := newEngine(ks, stale,
		testCluster("eu", map[string]string{"env": "prod"}, map[string]string{"region": "eu-west"}),
		testCluster("us", map[string]string{"env": "prod"}, nil),
		testCluster("dev", map[string]string{"env": "dev"}, nil))

	res, err := e.Deploy(ctx, testDeployment(ks))
	if err != nil {
		t.Fatal(err)
	}
	for cluster, region := range map[string]string{"eu": "eu-west", "us": "default"} {
		a, err := getAssignment(t, c, cluster)
		if err != nil {
			t.Fatalf("cluster %s: %v", cluster, err)
		}
		want := fleetv1.AssignmentSpec{
			Owner: fleetv1.DeploymentReference{APIVersion: deliveryv1.GroupVersion.String(), Kind: deliveryv1.KustomizationKind,
				Namespace: "apps", Name: "web", UID: "uid-web"},
			Artifact: fleetv1.SignedArtifact{URL: "https://hub/a.tar.gz", Digest: testDigest, Signature: "signed-for:" + cluster + ":" + fleetv1.ClusterNamespace(cluster) + "/ks.apps.web", Revision: testRevision},
			Prune:    true,
			ApplySettings: meta.ApplySettings{PostBuild: &meta.PostBuild{Substitute: map[string]string{
				"tier": "web", "region": region, meta.ClusterNameVariable: cluster}}},
			DependsOn: []string{"ks.apps.db"},
		}
		if diff := cmp.Diff(want, a.Spec); diff != "" {
			t.Errorf("cluster %s: spec (-want +got):\n%s", cluster, diff)
		}
		wantLabels := fleetv1.OwnerLabels(deliveryv1.KustomizationKind, "apps", "web")
		wantLabels[fleetv1.ClusterLabel] = cluster
		if diff := cmp.Diff(wantLabels, a.Labels); diff != "" {
			t.Errorf("cluster %s: labels (-want +got):\n%s", cluster, diff)
		}
		if diff := cmp.Diff([]string{fleetv1.AssignmentFinalizer}, a.Finalizers); diff != "" {
			t.Errorf("cluster %s: finalizers (-want +got):\n%s", cluster, diff)
		}
	}
	if _, err := getAssignment(t, c, "dev"); !apierrors.IsNotFound(err) {
		t.Errorf("the untargeted cluster's Assignment: %v, want it deleted", err)
	}
	wantEvents := []string{
		"Warning ClusterGroupNotFound cluster groups not found: gone",
		"Normal Unassigned cluster dev is no longer targeted",
	}
	if diff := cmp.Diff(wantEvents, drain(rec)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(meta.ClusterCounts{Targeted: 2}, res.Clusters); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	want := Condition{Reconciling, meta.RolloutInProgressReason, "revision " + testRevision + " is ready on 0 of 2 clusters"}
	if diff := cmp.Diff(want, res.Condition); diff != "" {
		t.Errorf("condition (-want +got):\n%s", diff)
	}
	if r := conditions.Get(ks, meta.ReadyCondition); r == nil || r.Reason != want.Reason || r.Status != metav1.ConditionUnknown {
		t.Errorf("owner's Ready condition = %+v, want Unknown/%s", r, want.Reason)
	}
	if ks.Status.Rollout != nil {
		t.Errorf("status.rollout = %+v without a rollout, want nil", ks.Status.Rollout)
	}
}

// TestDeployStagedRollout: a paused stage holds the next one until the approval
// annotation takes a new value, and status.rollout tells where the rollout stands.
func TestDeployStagedRollout(t *testing.T) {
	ctx := context.Background()
	ks := testOwner()
	ks.Spec.Placement = deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}}
	ks.Spec.Rollout = &deliveryv1.Rollout{Stages: []deliveryv1.RolloutStage{{
		Name: "canary", Pause: true, ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"canary": "true"}},
	}}}
	e, c, _ := newEngine(ks,
		testCluster("a", map[string]string{"canary": "true"}, nil),
		testCluster("b", nil, nil))
	deploy := func() Result {
		t.Helper()
		res, err := e.Deploy(ctx, testDeployment(ks))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	assigned := func(cluster string) bool {
		t.Helper()
		_, err := getAssignment(t, c, cluster)
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}

	res := deploy()
	if !assigned("a") || assigned("b") {
		t.Fatalf("first step: a assigned %v, b assigned %v; want only the canary", assigned("a"), assigned("b"))
	}
	wantStatus := &deliveryv1.RolloutStatus{Revision: testRevision, Stage: "canary", Updating: 1, Waiting: 1}
	if diff := cmp.Diff(wantStatus, ks.Status.Rollout); diff != "" {
		t.Errorf("status.rollout (-want +got):\n%s", diff)
	}
	if res.Condition.Reason != meta.RolloutInProgressReason {
		t.Errorf("condition %+v, want %s", res.Condition, meta.RolloutInProgressReason)
	}

	// The canary's agent reports the revision Ready: the rollout pauses after it.
	a, _ := getAssignment(t, c, "a")
	a.Status.AppliedDigest = testDigest
	conditions.Set(a, meta.ReadyCondition, metav1.ConditionTrue, meta.SucceededReason, "applied")
	if err := c.Status().Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	res = deploy()
	if assigned("b") {
		t.Fatal("b was assigned past a paused stage")
	}
	want := Condition{Reconciling, meta.RolloutPausedReason, "rollout of revision " + testRevision +
		" paused after stage canary: 1 clusters wait; approve with `flotilla rollout approve kustomization web -n apps`"}
	if diff := cmp.Diff(want, res.Condition); diff != "" {
		t.Errorf("condition (-want +got):\n%s", diff)
	}
	if !ks.Status.Rollout.Paused {
		t.Errorf("status.rollout = %+v, want paused", ks.Status.Rollout)
	}

	// Approval goes through the annotation once per value.
	ks.Annotations = map[string]string{deliveryv1.ApprovedStageAnnotation: "canary@1"}
	deploy()
	if !assigned("b") {
		t.Fatal("b was not assigned once the canary stage was approved")
	}
	wantStatus = &deliveryv1.RolloutStatus{Revision: testRevision, Updating: 1,
		ApprovedStages: []string{"canary"}, LastHandledApproval: "canary@1"}
	if diff := cmp.Diff(wantStatus, ks.Status.Rollout); diff != "" {
		t.Errorf("status.rollout (-want +got):\n%s", diff)
	}

	// A new revision starts over, remembering only the last approval handled.
	d := testDeployment(ks)
	d.Spec.Artifact.Revision = "main@sha1:0000000000000000000000000000000000000002"
	if _, err := e.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := ks.Status.Rollout; got.Revision != d.Spec.Artifact.Revision || len(got.ApprovedStages) != 0 || got.LastHandledApproval != "canary@1" {
		t.Errorf("status.rollout for a new revision = %+v", got)
	}
}

// TestDeployFailures: what the engine cannot do shows on the owner and as an error.
func TestDeployFailures(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newEngine()

	ks := testOwner()
	d := testDeployment(ks)
	d.Kind = "Widget"
	if _, err := e.Deploy(ctx, d); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("an unregistered kind: %v", err)
	}

	d = testDeployment(ks)
	d.Placement.ClusterSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Bogus"}}}
	if _, err := e.Deploy(ctx, d); err == nil {
		t.Error("an invalid selector placed")
	}
	if r := conditions.Get(ks, meta.ReadyCondition); r == nil || r.Reason != PlacementFailedReason || r.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v, want False/%s", r, PlacementFailedReason)
	}

	ks.Spec.Placement = deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}}
	ks.Spec.Rollout = &deliveryv1.Rollout{Stages: []deliveryv1.RolloutStage{{Name: "bad",
		ClusterSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Bogus"}}}}}}
	if _, err := e.Deploy(ctx, testDeployment(ks)); err == nil || !strings.Contains(err.Error(), "rollout stage bad") {
		t.Errorf("an invalid stage selector: %v", err)
	}
	if r := conditions.Get(ks, meta.ReadyCondition); r == nil || r.Reason != AssignmentFailedReason {
		t.Errorf("Ready = %+v, want %s", r, AssignmentFailedReason)
	}
}

// testSign stands for the hub's keyring: a signature that names what it covers, so a
// test sees that each cluster's Assignment is signed for that cluster.
func testSign(cluster string, a *fleetv1.Assignment) (string, error) {
	return "signed-for:" + cluster + ":" + a.Namespace + "/" + a.Name, nil
}

// TestDeployCountsVersions: the result counts the targeted clusters by the version
// their agents report, including clusters still on an older artifact.
func TestDeployCountsVersions(t *testing.T) {
	ctx := context.Background()
	ks := testOwner()
	ks.Spec.Placement = deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{}}
	report := func(cluster, version string) *fleetv1.Assignment {
		a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(cluster), Name: "ks.apps.web",
			Labels: map[string]string{fleetv1.OwnerKindLabel: deliveryv1.KustomizationKind, fleetv1.OwnerNamespaceLabel: "apps",
				fleetv1.OwnerNameLabel: "web", fleetv1.ClusterLabel: cluster}}}
		a.Status.AppliedRevision = "old"
		a.Status.Release = &fleetv1.ReleaseStatus{Name: "web", Namespace: "apps", ChartVersion: version}
		return a
	}
	e, _, _ := newEngine(ks, report("eu", "1.0.0"), report("us", "1.0.0"), report("ap", "0.9.0"),
		testCluster("eu", nil, nil), testCluster("us", nil, nil), testCluster("ap", nil, nil), testCluster("new", nil, nil))
	res, err := e.Deploy(ctx, testDeployment(ks))
	if err != nil {
		t.Fatal(err)
	}
	want := []meta.VersionCount{{Version: "1.0.0", Clusters: 2}, {Version: "0.9.0", Clusters: 1}}
	if diff := cmp.Diff(want, res.Versions); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
}
