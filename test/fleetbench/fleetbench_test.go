package fleetbench

import (
	"testing"
	"time"
)

// TestSmallFleet is the bench's behaviour at a size the test suite can afford: every
// cluster runs the new revision, the hub builds each artifact once whatever the
// number of clusters, and at rest the hub writes no Cluster status more than once a
// minute.
func TestSmallFleet(t *testing.T) {
	const clusters, deployments = 20, 2
	r := Run(t, Options{Clusters: clusters, Deployments: deployments, RestWindow: 15 * time.Second, Timeout: 2 * time.Minute})
	t.Logf("\n%s", Format([]Result{r}))
	if r.Artifacts != deployments {
		t.Errorf("the fleet runs %d distinct artifacts, want %d", r.Artifacts, deployments)
	}
	if r.Builds != r.Artifacts {
		t.Errorf("the commit took %d builds for %d distinct artifacts", r.Builds, r.Artifacts)
	}
	if perMin := r.Rest.clusterSets / (r.Rest.seconds / 60); perMin > clusters {
		t.Errorf("at rest the hub wrote Cluster status %.0f times a minute for %d clusters", perMin, clusters)
	}
}
