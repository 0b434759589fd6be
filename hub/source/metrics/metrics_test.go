package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func TestMetricsAreRegisteredAndCount(t *testing.T) {
	ObserveFetch("GitRepository", time.Now(), nil)
	ObserveFetch("GitRepository", time.Now(), errors.New("boom"))
	SetArtifactSize("GitRepository", "ns", "repo", 1234)

	if got := testutil.ToFloat64(fetchFailures.WithLabelValues("GitRepository")); got != 1 {
		t.Fatalf("failures %v, want 1", got)
	}
	want := `
# HELP flotilla_source_artifact_size_bytes Size of the artifact a source currently serves.
# TYPE flotilla_source_artifact_size_bytes gauge
flotilla_source_artifact_size_bytes{kind="GitRepository",name="repo",namespace="ns"} 1234
`
	if err := testutil.GatherAndCompare(crmetrics.Registry, strings.NewReader(want), "flotilla_source_artifact_size_bytes"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(crmetrics.Registry, "flotilla_source_fetch_duration_seconds"); err != nil || n != 1 {
		t.Fatalf("duration series %d (%v), want 1", n, err)
	}
	DeleteArtifactSize("GitRepository", "ns", "repo")
	if n, _ := testutil.GatherAndCount(crmetrics.Registry, "flotilla_source_artifact_size_bytes"); n != 0 {
		t.Fatalf("%d size series after delete", n)
	}
}
