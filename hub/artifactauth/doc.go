// Package artifactauth guards the hub's artifact server: a request must carry an
// agent's hub credential (checked with a TokenReview against the hub's API server),
// and may fetch only a digest that one of that cluster's Assignments points at.
package artifactauth
