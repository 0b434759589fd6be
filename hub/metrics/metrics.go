package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// Metric names, for dashboards and tests. Reconcile durations are controller-runtime's
// own (controller_runtime_reconcile_time_seconds{controller}), not repeated here.
const (
	DeploymentClustersName  = "flotilla_deployment_clusters"
	ClusterHeartbeatAgeName = "flotilla_cluster_heartbeat_age_seconds"
	ClusterReadyName        = "flotilla_cluster_ready"
	ClusterAssignmentsName  = "flotilla_cluster_assignments"
	ClusterAgentSkewName    = "flotilla_cluster_agent_version_skew"
	BuildsName              = "flotilla_builds_total"
	BuildDurationName       = "flotilla_build_duration_seconds"
	ArtifactBytesServedName = "flotilla_artifact_bytes_served_total"
	ArtifactRequestsName    = "flotilla_artifact_requests_total"
	ArtifactAuthorizedName  = "flotilla_artifact_authorizations_total"
)

// How the artifact guard decided a download (hub/artifactauth), the result label of
// ArtifactAuthorizedName.
const (
	// AuthorizedGranted: the URL's grant verified; no Assignment was read.
	AuthorizedGranted = "granted"
	// AuthorizedAssigned: no valid grant, but an Assignment of the cluster names the digest.
	AuthorizedAssigned = "assigned"
	// AuthorizedRefused: no valid grant and no Assignment of the cluster names the digest (403).
	AuthorizedRefused = "refused"
)

// Build results.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

var (
	// deploymentClusters is one gauge per deployment and state. A deployment has
	// four series; they go when it is deleted (Setup's informer handlers).
	deploymentClusters = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: DeploymentClustersName,
		Help: "Clusters of a deployment by state: targeted (placement ∩ tenant), applied (run the current artifact), ready (applied and healthy), failed (last attempt failed).",
	}, []string{"kind", "namespace", "name", "state"})
	builds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: BuildsName,
		Help: "Builds of a deployment's artifact (kustomize build, Helm render), by kind and result; a build cache hit is no build.",
	}, []string{"kind", "result"})
	buildDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    BuildDurationName,
		Help:    "Time taken by one build of a deployment's artifact, successful or not.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"kind"})
	bytesServed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: ArtifactBytesServedName,
		Help: "Bytes of artifacts the artifact server sent to agents (successful downloads only).",
	})
	artifactRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ArtifactRequestsName,
		Help: "Artifact download requests by HTTP status code (403: not assigned to the caller's cluster).",
	}, []string{"code"})
	artifactAuthorizations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ArtifactAuthorizedName,
		Help: "Authenticated artifact requests by how the guard decided them: granted (the URL's grant verified, no Assignment read), assigned (looked up), refused (403).",
	}, []string{"result"})
)

// CountAuthorization counts one decision of the artifact guard.
func CountAuthorization(result string) { artifactAuthorizations.WithLabelValues(result).Inc() }

func init() {
	crmetrics.Registry.MustRegister(deploymentClusters, builds, buildDuration, bytesServed, artifactRequests, artifactAuthorizations, clusters)
}

// SetDeployment records a deployment's rollup, as the engine computed it.
func SetDeployment(kind, namespace, name string, c meta.ClusterCounts) {
	for state, v := range map[string]int32{"targeted": c.Targeted, "applied": c.Applied, "ready": c.Ready, "failed": c.Failed} {
		deploymentClusters.WithLabelValues(kind, namespace, name, state).Set(float64(v))
	}
}

// ForgetDeployment drops a deleted deployment's series.
func ForgetDeployment(kind, namespace, name string) {
	deploymentClusters.DeletePartialMatch(prometheus.Labels{"kind": kind, "namespace": namespace, "name": name})
}

// ObserveBuild records one build of kind that began at start; err is its outcome.
func ObserveBuild(kind string, start time.Time, err error) {
	buildDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	result := ResultSuccess
	if err != nil {
		result = ResultFailure
	}
	builds.WithLabelValues(kind, result).Inc()
}
