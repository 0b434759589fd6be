package agent_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/test/env"
)

// TestAgentVersionGate: an Assignment that carries spec.agentVersion (the agent's own
// Deployment, from the AgentRollout) is Ready only once the agent runs that version,
// and fails after its timeout when it never does; the heartbeat reports the same
// version.
func TestAgentVersionGate(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "agentversion")
	var running atomic.Value
	running.Store("v1.4.0")
	c.runAgent(t, c.hubCP.Config(), func(o *agent.Options) {
		o.Version = func() string { return running.Load().(string) }
	})
	hub := c.hub

	t.Run("Ready waits for the agent of the wanted version", func(t *testing.T) {
		art := c.arts.Add("agent@v1.5.0", map[string]string{"m.yaml": c.namespace() + configMap("agent-marker", "v1.5.0")})
		key := c.newAssignment(t, "ar.upgrade", art, func(a *fleetv1.Assignment) { a.Spec.AgentVersion = "v1.5.0" })
		env.Eventually(t, "Ready=Unknown waiting for v1.5.0", func() error {
			a := current(t, hub, key)
			rc := readyCondition(a)
			if a.Status.AppliedDigest != art.Digest || rc.Status != metav1.ConditionUnknown || rc.Reason != meta.ProgressingReason ||
				!strings.Contains(rc.Message, "running version v1.4.0, waiting for version v1.5.0") {
				return fmt.Errorf("applied %q, Ready=%s %s: %s", a.Status.AppliedDigest, rc.Status, rc.Reason, rc.Message)
			}
			return nil
		})
		running.Store("v1.5.0") // the new agent runs
		waitReady(t, hub, key, art.Digest)
		env.Eventually(t, "the heartbeat to report v1.5.0", func() error {
			var lease coordinationv1.Lease
			if err := hub.Get(context.Background(), types.NamespacedName{Namespace: c.hubNS, Name: fleetv1.AgentLeaseName}, &lease); err != nil {
				return err
			}
			if v := lease.Annotations[fleetv1.AgentVersionAnnotation]; v != "v1.5.0" {
				return fmt.Errorf("lease reports %q", v)
			}
			return nil
		})
	})

	t.Run("an agent that never comes fails the Assignment after its timeout", func(t *testing.T) {
		art := c.arts.Add("agent@v1.6.0", map[string]string{"m.yaml": configMap("agent-marker-2", "v1.6.0")})
		began := time.Now()
		key := c.newAssignment(t, "ar.never", art, func(a *fleetv1.Assignment) {
			a.Spec.AgentVersion = "v1.6.0"
			a.Spec.Timeout = &metav1.Duration{Duration: 4 * time.Second}
		})
		a := waitCondition(t, hub, key, metav1.ConditionFalse, meta.HealthCheckFailedReason)
		if rc := readyCondition(a); !strings.Contains(rc.Message, "waiting for version v1.6.0") {
			t.Errorf("Ready message %q does not name the wanted version", rc.Message)
		}
		if time.Since(began) < 3*time.Second {
			t.Errorf("failed after %s, before the timeout", time.Since(began))
		}
	})
}
