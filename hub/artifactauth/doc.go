// Package artifactauth guards the hub's artifact server: a request must carry an
// agent's hub credential (checked with a TokenReview against the hub's API server),
// and may fetch only a digest assigned to that cluster. A download grant in the URL
// (made by hub/signing for the cluster and digest, carried in the signed Assignment)
// proves that without any API read; without a valid grant, one of the cluster's
// Assignments must point at the digest: the hub manager's cache answers that, and a
// digest it does not show is looked up live once before it is refused, since an
// agent may hear of a new Assignment before the cache.
package artifactauth
