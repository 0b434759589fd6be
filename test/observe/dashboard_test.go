package observe

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/spoke/agent"
)

// TestDashboardNamesMetricsThatExist keeps deploy/grafana/flotilla-fleet.json in
// step with the code: every flotilla_ metric a panel queries is one the hub, the
// agent or the source controllers define.
func TestDashboardNamesMetricsThatExist(t *testing.T) {
	data, err := os.ReadFile("../../deploy/grafana/flotilla-fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{
		// hub/source/metrics
		"flotilla_source_fetch_duration_seconds": true, "flotilla_source_fetch_failures_total": true,
		"flotilla_source_artifact_size_bytes": true,
	}
	for _, n := range []string{
		hubmetrics.DeploymentClustersName, hubmetrics.ClusterHeartbeatAgeName, hubmetrics.ClusterReadyName,
		hubmetrics.ClusterAssignmentsName, hubmetrics.ClusterAgentSkewName, hubmetrics.BuildsName,
		hubmetrics.BuildDurationName, hubmetrics.ArtifactBytesServedName, hubmetrics.ArtifactRequestsName,
		agent.ApplyDurationName, agent.PruneDurationName, agent.PrunedObjectsName,
		agent.DriftCorrectionsName, agent.DriftDetectedName, agent.AgentInfoName,
	} {
		known[n] = true
	}
	name := regexp.MustCompile(`flotilla_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && known[b] {
						base = b
					}
				}
				if !known[base] {
					t.Errorf("panel %q queries %s, which no code defines", p.Title, m)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("the dashboard queries no flotilla_ metric")
	}
}
