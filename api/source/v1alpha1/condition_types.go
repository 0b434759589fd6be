package v1alpha1

// Condition reasons of the source kinds, next to the shared ones in api/meta.
const (
	// OCIPullFailedReason: listing tags or pulling the OCI artifact failed.
	OCIPullFailedReason = "OCIPullFailed"
	// AuthenticationFailedReason: the server refused the credentials of spec.secretRef,
	// or the Secret does not hold usable ones.
	AuthenticationFailedReason = "AuthenticationFailed"
	// InvalidArtifactReason: what the server returned is not a usable artifact (an OCI
	// layer that is not a tar.gz of plain files, an index.yaml that does not parse).
	InvalidArtifactReason = "InvalidArtifact"
	// IndexationFailedReason: the Helm repository index could not be fetched.
	IndexationFailedReason = "IndexationFailed"
	// SecretNotFoundReason: the Secret that spec.secretRef (or spec.verify.secretRef)
	// names does not exist (yet); the source is fetched again at its interval.
	SecretNotFoundReason = "SecretNotFound"
	// InvalidSemVerReason: spec.ref.semver is not a semver range; only a spec change helps.
	InvalidSemVerReason = "InvalidSemVer"
	// IncludeUnavailableReason: a GitRepository of spec.include does not exist, has no
	// artifact yet, or lacks spec.include's fromPath; the including one is fetched
	// again when the included one stores an artifact.
	IncludeUnavailableReason = "IncludeUnavailable"
	// InvalidIncludeReason: spec.include cannot work as written (the repositories
	// include each other, or a path leaves the artifact); only a spec change helps.
	InvalidIncludeReason = "InvalidInclude"
	// InvalidLayerReason: no layer of the OCI artifact has spec.layerSelector.mediaType.
	InvalidLayerReason = "InvalidLayer"
)
