// Package engine is the hub's one deployment engine: once a kind's controller has
// built and signed an artifact, the engine places it, plans the rollout, writes the
// Assignments and rolls the clusters' reports up into the deployment's status, the
// same way for every deployment kind.
package engine
