package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/hub/agentrollout"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
)

const agentRepo = "registry.example.com/flotilla/flotilla-agent:"

// runningAgent stands in for the agent a spoke's Deployment runs: the agents of this
// test run in-process, so each reports the version of the image its spoke's
// flotilla-agent Deployment has fully rolled out (kwok runs the pods), and the
// version it reported before while a new one is on its way.
type runningAgent struct {
	spoke client.Client
	mu    sync.Mutex
	last  string
}

func (r *runningAgent) version() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d appsv1.Deployment
	key := types.NamespacedName{Namespace: fleetv1.SystemNamespace, Name: agentrollout.DeploymentName}
	if err := r.spoke.Get(context.Background(), key, &d); err == nil && deploymentDone(&d) {
		if v := fleetv1.ImageTag(d.Spec.Template.Spec.Containers[0].Image); v != "" {
			r.last = v
		}
	}
	return r.last
}

// deploymentDone: the Deployment's current generation runs, all replicas updated and available.
func deploymentDone(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == want &&
		d.Status.AvailableReplicas == want && d.Status.Replicas == want
}

// TestAgentRollout: the hub offers its agent image to a 3-cluster fleet through the
// Assignment path. Each spoke's agent Deployment moves to the new image stage by
// stage, one cluster at a time, a cluster counting as upgraded only once its agent
// reports the new version; a stage whose cluster refuses the image stops the rollout,
// names the cluster, and the later stage keeps its agent.
func TestAgentRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	spokes := []string{"spoke-1", "spoke-2", "spoke-3"}
	// A short heartbeat grace, so that an agent that is gone shows quickly.
	f := fleetenv.StartFleet(t, 3, fleetenv.WithHeartbeat(time.Second, 4*time.Second), fleetenv.With(func(o *devenv.Options) {
		// The hub as installed with --agent-image: it writes the AgentRollout at start.
		o.Hub = func(h *manager.Options) { h.AgentImage = agentRepo + "v1.1.0" }
		o.Agent = func(a *agent.Options) {
			c, err := client.New(a.SpokeConfig, client.Options{})
			if err != nil {
				t.Errorf("spoke client of %s: %v", a.ClusterName, err)
				return
			}
			r := &runningAgent{spoke: c, last: "v1.0.0"}
			a.Version = r.version
		}
	}))
	hub := f.HubClient()
	for _, s := range spokes {
		env.StartNodes(t, f.Spoke(s))
	}
	ar := &fleetv1.AgentRollout{ObjectMeta: metav1.ObjectMeta{Name: fleetv1.AgentRolloutName}}
	image := func(spoke string) string {
		var d appsv1.Deployment
		key := types.NamespacedName{Namespace: fleetv1.SystemNamespace, Name: agentrollout.DeploymentName}
		if err := f.SpokeClient(spoke).Get(ctx, key, &d); err != nil {
			return "error: " + err.Error()
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	wantUpgraded := func(t *testing.T, version string) {
		t.Helper()
		env.WaitFor(t, hub, ar, func(a *fleetv1.AgentRollout) error {
			if a.Status.Clusters.Targeted != 3 || a.Status.Clusters.Ready != 3 || !conditionTrue(a, meta.ReadyCondition) {
				return fmt.Errorf("clusters %+v, conditions %+v", a.Status.Clusters, a.Status.Conditions)
			}
			if v := a.Status.AgentVersions; len(v) != 1 || v[0].Version != version || v[0].Clusters != 3 {
				return fmt.Errorf("agentVersions %+v, want 3 on %s", v, version)
			}
			return nil
		})
		for _, s := range spokes {
			if got := image(s); got != agentRepo+version {
				t.Errorf("%s runs %s, want %s", s, got, agentRepo+version)
			}
		}
	}

	t.Run("the hub offers its agent at start", func(t *testing.T) {
		wantUpgraded(t, "v1.1.0")
		if ar.Spec.Image != agentRepo+"v1.1.0" || ar.Spec.AgentVersion() != "v1.1.0" {
			t.Errorf("spec %+v", ar.Spec)
		}
	})

	// The platform team paces agent upgrades: a canary, then spoke-2, then the rest,
	// one cluster at a time.
	one := intstr.FromInt32(1)
	patch := client.MergeFrom(ar.DeepCopy())
	ar.Spec.Rollout = &deliveryv1.Rollout{MaxUnavailable: &one, Stages: []deliveryv1.RolloutStage{
		{Name: "canary", ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "spoke-1"}}},
		{Name: "second", ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "spoke-2"}}},
	}}
	if err := hub.Patch(ctx, ar, patch); err != nil {
		t.Fatal(err)
	}

	t.Run("an upgraded hub moves the agents stage by stage", func(t *testing.T) {
		mon := watchAgentRollout(t, f, spokes, image)
		// What a hub started with --agent-image=...:v1.2.0 does.
		agentrollout.Ensure(ctx, hub, agentRepo+"v1.2.0", env.Log())
		wantUpgraded(t, "v1.2.0")
		order := mon.stop()
		if strings.Join(order, ",") != "spoke-1,spoke-2,spoke-3" {
			t.Errorf("the Deployments moved in the order %v, want spoke-1, spoke-2, spoke-3", order)
		}
		if ar.Spec.Rollout == nil || len(ar.Spec.Rollout.Stages) != 2 {
			t.Errorf("the hub's write dropped the operator's rollout: %+v", ar.Spec.Rollout)
		}
	})

	t.Run("a cluster whose new agent never reports stops the rollout", func(t *testing.T) {
		// What Recreate does to the old agent, with a new one that never comes up:
		// spoke-1's agent stops the moment its Deployment moves.
		stopped := make(chan error, 1)
		go func() {
			for deadline := time.Now().Add(2 * time.Minute); image("spoke-1") != agentRepo+"v1.2.5"; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					stopped <- fmt.Errorf("spoke-1's Deployment never moved to v1.2.5")
					return
				}
			}
			stopped <- f.Fleet.StopAgent("spoke-1")
		}()
		agentrollout.Ensure(ctx, hub, agentRepo+"v1.2.5", env.Log())
		env.WaitFor(t, hub, ar, func(a *fleetv1.AgentRollout) error {
			c := apimeta.FindStatusCondition(a.Status.Conditions, meta.StalledCondition)
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != meta.RolloutStalledReason || !strings.Contains(c.Message, "cluster spoke-1 has not reported") {
				return fmt.Errorf("Stalled is %+v, want True/RolloutStalled naming spoke-1", c)
			}
			if len(a.Status.Failures) != 1 || a.Status.Failures[0].Cluster != "spoke-1" {
				return fmt.Errorf("failures %+v", a.Status.Failures)
			}
			return nil
		})
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"spoke-2", "spoke-3"} {
			if got := image(s); got != agentRepo+"v1.2.0" {
				t.Errorf("%s runs %s while the canary's agent is lost, want v1.2.0", s, got)
			}
		}
		// The new agent comes up after all: the rollout goes on.
		f.StartAgent("spoke-1")
		wantUpgraded(t, "v1.2.5")
	})

	t.Run("a cluster that refuses the image stops the rollout", func(t *testing.T) {
		refuseImage(t, f.SpokeClient("spoke-2"), "v1.3.0")
		agentrollout.Ensure(ctx, hub, agentRepo+"v1.3.0", env.Log())
		env.WaitFor(t, hub, ar, func(a *fleetv1.AgentRollout) error {
			c := apimeta.FindStatusCondition(a.Status.Conditions, meta.StalledCondition)
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != meta.RolloutStalledReason || !strings.Contains(c.Message, "spoke-2") {
				return fmt.Errorf("Stalled is %+v, want True/RolloutStalled naming spoke-2", c)
			}
			if len(a.Status.Failures) != 1 || a.Status.Failures[0].Cluster != "spoke-2" || !strings.Contains(a.Status.Failures[0].Message, "not allowed here") {
				return fmt.Errorf("failures %+v", a.Status.Failures)
			}
			// The hub's decision: spoke-3 waits.
			if r := a.Status.Rollout; r == nil || r.Waiting != 1 {
				return fmt.Errorf("status.rollout %+v, want spoke-3 waiting", r)
			}
			return nil
		})
		if got := image("spoke-1"); got != agentRepo+"v1.3.0" {
			t.Errorf("the canary runs %s, want v1.3.0", got)
		}
		for _, s := range []string{"spoke-2", "spoke-3"} {
			if got := image(s); got != agentRepo+"v1.2.5" {
				t.Errorf("%s runs %s, want it kept on v1.2.5", s, got)
			}
		}
		var a fleetv1.Assignment
		key := types.NamespacedName{Namespace: fleetv1.ClusterNamespace("spoke-3"),
			Name: fleetv1.AssignmentName(fleetv1.AgentRolloutKind, "", fleetv1.AgentRolloutName)}
		if err := hub.Get(ctx, key, &a); err != nil {
			t.Fatal(err)
		}
		if a.Spec.AgentVersion != "v1.2.5" || !conditionTrue(&a, meta.ReadyCondition) {
			t.Errorf("spoke-3's Assignment wants %s, Ready %v: it should keep v1.2.5, Ready", a.Spec.AgentVersion, a.Status.Conditions)
		}
	})

	t.Run("flotilla get agentrollouts and status show where the upgrade stands", func(t *testing.T) {
		env.Eventually(t, "the CLI to show v1.3.0 on one cluster and v1.2.5 on two", func() error {
			out, err := flotilla(f, "get", "agentrollouts")
			if err != nil {
				return err
			}
			for _, want := range []string{"flotilla-agent", agentRepo + "v1.3.0", "v1.2.5=2,v1.3.0=1", "stopped: cluster spoke-2 failed"} {
				if !strings.Contains(out, want) {
					return fmt.Errorf("no %q in:\n%s", want, out)
				}
			}
			// flotilla status has an AGENTS table: the image, the versions running and
			// the failing cluster.
			out, err = flotilla(f, "status")
			if err != nil {
				return err
			}
			_, agents, ok := strings.Cut(out, "\nAGENTS\n")
			if !ok {
				return fmt.Errorf("no AGENTS table in:\n%s", out)
			}
			for _, want := range []string{agentRepo + "v1.3.0", "v1.2.5×2,v1.3.0×1", "spoke-2: "} {
				if !strings.Contains(agents, want) {
					return fmt.Errorf("no %q in the AGENTS table:\n%s", want, agents)
				}
			}
			return nil
		})
	})

	t.Run("a paused canary goes on with flotilla rollout approve", func(t *testing.T) {
		// spoke-2 takes any image again; the canary now waits for approval.
		if err := f.SpokeClient("spoke-2").DeleteAllOf(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{}); err != nil {
			t.Fatal(err)
		}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(ar), ar); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(ar.DeepCopy())
		ar.Spec.Rollout.Stages[0].Pause = true
		if err := hub.Patch(ctx, ar, patch); err != nil {
			t.Fatal(err)
		}
		agentrollout.Ensure(ctx, hub, agentRepo+"v1.4.0", env.Log())
		env.WaitFor(t, hub, ar, func(a *fleetv1.AgentRollout) error {
			if r := a.Status.Rollout; r == nil || !r.Paused || r.Stage != "canary" || r.Waiting != 2 {
				return fmt.Errorf("status.rollout %+v, want paused after canary with 2 waiting", r)
			}
			if a.Status.Clusters.Ready != 1 {
				return fmt.Errorf("clusters %+v, want the canary upgraded", a.Status.Clusters)
			}
			return nil
		})
		// (spoke-2 may have gone on to the v1.3.0 it was handed, once allowed.)
		for _, s := range []string{"spoke-2", "spoke-3"} {
			if got := image(s); got == agentRepo+"v1.4.0" {
				t.Errorf("%s runs %s before the approval", s, got)
			}
		}
		if out, err := flotilla(f, "rollout", "approve", "agentrollout", fleetv1.AgentRolloutName); err != nil || !strings.Contains(out, "approved stage canary") {
			t.Fatalf("rollout approve: %v\n%s", err, out)
		}
		wantUpgraded(t, "v1.4.0")
	})
}

func conditionTrue(o interface{ GetConditions() []metav1.Condition }, typ string) bool {
	c := apimeta.FindStatusCondition(o.GetConditions(), typ)
	return c != nil && c.Status == metav1.ConditionTrue
}

// refuseImage makes a spoke refuse Deployments that run an image of that tag, as a
// cluster's own admission policy would, and waits until the API server enforces it.
func refuseImage(t *testing.T, spoke client.Client, tag string) {
	t.Helper()
	ctx := context.Background()
	name := "refuse-" + strings.ReplaceAll(tag, ".", "-")
	fail := admissionv1.Fail
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}}},
			Validations: []admissionv1.Validation{{
				Expression: fmt.Sprintf("!object.spec.template.spec.containers.exists(c, c.image.endsWith(':%s'))", tag),
				Message:    "image " + tag + " is not allowed here",
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny}},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := spoke.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	env.Eventually(t, "the policy to refuse "+tag, func() error {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "policy-probe"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}},
				Template: corev1PodTemplate("probe", "example.com/probe:"+tag),
			},
		}
		err := spoke.Create(ctx, d, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "not allowed here") {
			return fmt.Errorf("a Deployment of %s was not refused: %v", tag, err)
		}
		return nil
	})
}

// agentRolloutMonitor checks, every 50 ms while an agent upgrade runs, that a spoke's
// Deployment moves only after the hub handed its cluster the new Assignment, that
// the hub hands it over stage by stage (a cluster only once the clusters of earlier
// stages report the new agent), and that at most one cluster is on its way at once.
type agentRolloutMonitor struct {
	done    chan struct{}
	stopped chan struct{}
	mu      sync.Mutex
	order   []string
	errs    map[string]bool
}

func watchAgentRollout(t *testing.T, f *fleetenv.Fleet, spokes []string, image func(string) string) *agentRolloutMonitor {
	m := &agentRolloutMonitor{done: make(chan struct{}), stopped: make(chan struct{}), errs: map[string]bool{}}
	hub := f.HubClient()
	var ar fleetv1.AgentRollout
	if err := hub.Get(context.Background(), types.NamespacedName{Name: fleetv1.AgentRolloutName}, &ar); err != nil {
		t.Fatal(err)
	}
	before := ar.Status.Artifact.Digest
	seen := map[string]string{}
	for _, s := range spokes {
		seen[s] = image(s)
	}
	go func() {
		defer close(m.stopped)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-tick.C:
			}
			// The Deployments first, then the Assignments: a Deployment seen moved must
			// find its Assignment moved in the later read.
			images := map[string]string{}
			for _, s := range spokes {
				images[s] = image(s)
			}
			var list fleetv1.AssignmentList
			if err := hub.List(context.Background(), &list, client.MatchingLabels{fleetv1.OwnerKindLabel: fleetv1.AgentRolloutKind}); err != nil {
				continue
			}
			handed, ready := map[string]bool{}, map[string]bool{}
			for i := range list.Items {
				a := &list.Items[i]
				c := a.Labels[fleetv1.ClusterLabel]
				if a.Spec.Artifact.Digest != before {
					handed[c] = true
					rc := apimeta.FindStatusCondition(a.Status.Conditions, meta.ReadyCondition)
					ready[c] = a.Status.AppliedDigest == a.Spec.Artifact.Digest && rc != nil && rc.Status == metav1.ConditionTrue && rc.ObservedGeneration == a.Generation
				}
			}
			m.mu.Lock()
			unavailable := 0
			for i, s := range spokes {
				if images[s] != seen[s] {
					seen[s] = images[s]
					m.order = append(m.order, s)
					if !handed[s] {
						m.errs[s+"'s Deployment moved before the hub handed it the new Assignment"] = true
					}
				}
				if handed[s] && !ready[s] {
					unavailable++
				}
				if handed[s] && i > 0 && !ready[spokes[i-1]] {
					m.errs[fmt.Sprintf("%s was handed the new agent while %s did not run it yet", s, spokes[i-1])] = true
				}
			}
			if unavailable > 1 {
				m.errs[fmt.Sprintf("%d clusters upgrading at once, maxUnavailable is 1", unavailable)] = true
			}
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			close(m.done)
		}
		<-m.stopped
		m.mu.Lock()
		defer m.mu.Unlock()
		for e := range m.errs {
			t.Error(e)
		}
	})
	return m
}

// stop ends the watch and returns the order in which the spokes' Deployments moved.
func (m *agentRolloutMonitor) stop() []string {
	close(m.done)
	<-m.stopped
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.order...)
}

func corev1PodTemplate(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: image}}},
	}
}
