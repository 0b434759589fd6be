// Package artifactauth guards the hub's artifact server: a request must carry an
// agent's hub credential (checked with a TokenReview against the hub's API server),
// and may fetch only a digest that one of that cluster's Assignments points at. The
// hub manager's cache answers that; a digest it does not show is looked up live once
// before it is refused, since an agent may hear of a new Assignment before the cache.
package artifactauth
