package v1alpha1

// Condition types. Every Flotilla kind uses kstatus semantics:
// Ready is the summary, Reconciling is True while work is under way, and Stalled is
// True when nothing changes until the user changes something.
const (
	// ReadyCondition is True when the object's last reconcile fully succeeded.
	ReadyCondition = "Ready"
	// ReconcilingCondition is True while the controller is working towards a new state.
	ReconcilingCondition = "Reconciling"
	// StalledCondition is True when progress needs a change from the user.
	StalledCondition = "Stalled"
	// ArtifactInStorageCondition is True when the source's artifact is stored and served.
	ArtifactInStorageCondition = "ArtifactInStorage"
	// SourceVerifiedCondition is True when the fetched commit or tag carries a valid
	// OpenPGP signature by a trusted key.
	SourceVerifiedCondition = "SourceVerified"
	// DriftedCondition is True on an Assignment when the agent found hand-made changes.
	DriftedCondition = "Drifted"
	// ReleasedCondition is True on a deleted Assignment once its agent has pruned (or
	// orphaned) what it applied, so that the hub may let it go.
	ReleasedCondition = "Released"
	// AgentVersionSkewCondition is True on a Cluster whose agent is more than one
	// minor version from the hub's (version.Compatible): an unsupported pair, which
	// an agent upgrade or a hub rollback must end. Absent otherwise.
	AgentVersionSkewCondition = "AgentVersionSkew"
)

// UnsupportedVersionSkewReason: the agent and the hub are more than one minor
// version apart, or of different majors.
const UnsupportedVersionSkewReason = "UnsupportedVersionSkew"

// Condition reasons, in CamelCase as metav1.Condition requires.
const (
	// SucceededReason: the last reconcile did all it had to.
	SucceededReason = "Succeeded"
	// ProgressingReason: work is under way.
	ProgressingReason = "Progressing"
	// SuspendedReason: spec.suspend is true, the object is left alone.
	SuspendedReason = "Suspended"
	// GitOperationFailedReason: clone, fetch or checkout failed.
	GitOperationFailedReason = "GitOperationFailed"
	// InvalidURLReason: the source URL cannot be used.
	InvalidURLReason = "InvalidURL"
	// StorageOperationFailedReason: the artifact could not be written or read.
	StorageOperationFailedReason = "StorageOperationFailed"
	// SourceNotFoundReason: the referenced source does not exist.
	SourceNotFoundReason = "SourceNotFound"
	// ArtifactNotReadyReason: the referenced source has no artifact yet.
	ArtifactNotReadyReason = "ArtifactNotReady"
	// InvalidHealthCheckExprReason: a CEL expression of spec.healthCheckExprs does not
	// compile; nothing is built or assigned until the spec changes.
	InvalidHealthCheckExprReason = "InvalidHealthCheckExpr"
	// InvalidOverlayReason: spec.components or spec.commonMetadata is refused (a
	// component outside the source, a key the agent keeps for itself); nothing is
	// built or assigned until the spec changes.
	InvalidOverlayReason = "InvalidOverlay"
	// BuildFailedReason: kustomize build failed; the previous revision keeps running.
	BuildFailedReason = "BuildFailed"
	// RolloutInProgressReason: targeted clusters are still moving to the new revision.
	RolloutInProgressReason = "RolloutInProgress"
	// RolloutStalledReason: a cluster failed the new revision; the rollout stopped.
	RolloutStalledReason = "RolloutStalled"
	// RolloutPausedReason: a stage is done and waits for approval.
	RolloutPausedReason = "RolloutPaused"
	// ClustersFailedReason: at least one targeted cluster failed.
	ClustersFailedReason = "ClustersFailed"
	// ArtifactFailedReason: the artifact could not be downloaded.
	ArtifactFailedReason = "ArtifactFailed"
	// VerificationFailedReason: digest or signature did not verify; nothing was applied.
	VerificationFailedReason = "VerificationFailed"
	// ApplyFailedReason: the server refused one or more objects.
	ApplyFailedReason = "ApplyFailed"
	// PruneFailedReason: objects dropped from the artifact could not be deleted.
	PruneFailedReason = "PruneFailed"
	// HeartbeatFreshReason: the agent renewed its lease recently.
	HeartbeatFreshReason = "HeartbeatFresh"
	// HeartbeatStaleReason: the agent has not renewed its lease within the grace period.
	HeartbeatStaleReason = "HeartbeatStale"
	// AgentNotConnectedReason: no agent has ever reported for this cluster.
	AgentNotConnectedReason = "AgentNotConnected"
	// HealthCheckFailedReason: an applied or health-checked object did not become
	// healthy (kstatus Current) within the timeout, or reported that it failed.
	HealthCheckFailedReason = "HealthCheckFailed"
	// DependencyNotReadyReason: an Assignment named in dependsOn is not Ready on its
	// current artifact yet.
	DependencyNotReadyReason = "DependencyNotReady"
	// DependencyNotPlacedReason: a dependency's deployment is not placed on this
	// cluster, so it will never be Ready here; nothing is applied until the
	// placements change (Stalled).
	DependencyNotPlacedReason = "DependencyNotPlaced"
	// DriftDetectedReason: objects on the spoke differ from the artifact and were left
	// so (drift detection mode Warn, or the deployment is suspended).
	DriftDetectedReason = "DriftDetected"
	// DriftCorrectedReason: objects on the spoke differed from the artifact and were
	// restored.
	DriftCorrectedReason = "DriftCorrected"
	// NoDriftReason: the last drift check found the spoke as declared.
	NoDriftReason = "NoDrift"
)

// ReconcileRequestedAtAnnotation asks for an immediate reconcile whenever its value changes.
const ReconcileRequestedAtAnnotation = "flotilla.dev/reconcile-requested-at"
