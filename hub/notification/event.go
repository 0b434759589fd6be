package notification

import (
	"regexp"
	"time"
)

// Severities of an event; an Alert with eventSeverity error gets only SeverityError.
const (
	SeverityInfo  = "info"
	SeverityError = "error"
)

// Reasons of the fleet-step events derived from deployments' status.
const (
	RolloutStartedReason  = "RolloutStarted"
	StageStartedReason    = "StageStarted"
	RolloutPausedReason   = "RolloutPaused"
	RolloutFinishedReason = "RolloutFinished"
	RolloutStalledReason  = "RolloutStalled"
	ClustersFailedReason  = "ClustersFailed"
)

// Metadata keys an event may carry; chat messages show them as fields, the generic
// webhook sends them as they are, and commit statuses read revision.
const (
	RevisionKey = "revision"
	ClusterKey  = "cluster"
	ClustersKey = "clusters"
	StageKey    = "stage"
)

// Event is one thing worth telling a tenant about an object of the hub.
type Event struct {
	// Kind, Namespace and Name of the object the event is about (Namespace empty for
	// a Cluster).
	Kind, Namespace, Name string
	// Labels of the object, for eventSources[].matchLabels.
	Labels map[string]string
	// Severity is SeverityInfo or SeverityError.
	Severity string
	// Reason is a CamelCase word saying what happened.
	Reason string
	// Message is the sentence sent.
	Message string
	// Metadata: revision, cluster, clusters, stage, whichever apply.
	Metadata map[string]string
	// Time the event happened.
	Time time.Time
}

// Commit is the Git commit named by the event's revision (`<ref>@sha1:<hex>` or a
// bare 40-hex SHA), "" when it names none.
func (e Event) Commit() string {
	m := commitRE.FindStringSubmatch(e.Metadata[RevisionKey])
	if m == nil {
		return ""
	}
	return m[1]
}

var commitRE = regexp.MustCompile(`(?:^|@sha1:)([0-9a-f]{40})$`)
