package artifactauth

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// DefaultCacheTTL is how long a token's review is reused. It bounds how long a
// revoked credential may still download artifacts it was already assigned. A rollout
// makes every cluster download one artifact per deployment within a minute or two:
// at 10 s, 1,000 clusters cost about 35 TokenReviews a second during a rollout
// (make bench-fleet), at a minute a few.
const DefaultCacheTTL = time.Minute

// DefaultCacheWait is Guard.CacheWait's default.
const DefaultCacheWait = 2 * time.Second

// cachePoll is how often the cache is looked at again while a digest is awaited.
const cachePoll = 100 * time.Millisecond

// Guard wraps the artifact handler with authentication and authorization.
type Guard struct {
	// Reviewer creates TokenReviews on the hub's API server (a direct client).
	Reviewer client.Client
	// Grants verifies the download grant an artifact URL carries (?grant=, made by
	// hub/signing for the Assignment's cluster and digest): a request whose grant
	// verifies for its own cluster and digest is served without reading any
	// Assignment. Nil: every request is looked up.
	Grants GrantVerifier
	// Assignments reads Assignments; the hub manager's cache serves it cheaply. Only
	// requests without a valid grant read it, so an informer behind it is started by
	// the first such request, not by the guard.
	Assignments client.Reader
	// Live reads Assignments from the API server itself (the manager's API reader).
	// The cache lags behind the API server: an agent that sees a new Assignment
	// through its own watch may ask for its artifact before the hub's informer has
	// it. So a digest the cache does not show assigned is looked up once more, live,
	// before it is refused. Nil: the cache's answer is final.
	Live client.Reader
	// Trusted returns the keys the hub signs Assignments with. When set, a lookup
	// counts only an Assignment whose signature verifies for the cluster, as its agent
	// would: a hub user who may write Assignments but holds no signing key cannot get
	// the server to hand a cluster an artifact the hub never assigned to it. Nil: any
	// Assignment in the cluster's namespace counts.
	Trusted func() []ed25519.PublicKey
	// CacheWait is how long a digest the cache does not show assigned is awaited in
	// the cache before the live read: during a rollout the hub's informer trails the
	// agents' watches by a moment, and at 300 clusters a third of the downloads were
	// each one more List on the API server. DefaultCacheWait when zero; negative reads
	// live at once.
	CacheWait time.Duration
	// CacheTTL is how long a review is reused; DefaultCacheTTL when zero, negative
	// turns the cache off.
	CacheTTL time.Duration
	Log      logr.Logger

	mu    sync.Mutex
	cache map[[32]byte]review
	// pending holds the reviews in flight, by token hash: an agent downloads several
	// artifacts at once, and the requests of one token wait for one review.
	pending map[[32]byte]*pendingReview
	// lists holds the live Lists in flight, by namespace.
	lists map[string]*pendingList
}

type pendingReview struct {
	done    chan struct{}
	cluster string
	err     error
}

type review struct {
	cluster string
	err     error
	expires time.Time
}

// GrantVerifier checks download grants; hub/signing's Keyring is one.
type GrantVerifier interface {
	// VerifyGrant reports whether grant was made for exactly cluster and digest by a
	// key the hub still trusts.
	VerifyGrant(cluster, digest, grant string) bool
}

// Wrap returns next guarded.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flotilla"`)
			http.Error(w, "an agent's hub credential is required", http.StatusUnauthorized)
			return
		}
		cluster, err := g.authenticate(r.Context(), token)
		var transient *transientError
		if errors.As(err, &transient) {
			g.Log.Error(err, "cannot authenticate artifact request")
			http.Error(w, "cannot check the credential now", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			g.Log.V(1).Info("artifact request not authenticated", "path", r.URL.Path, "reason", err.Error())
			w.Header().Set("WWW-Authenticate", `Bearer realm="flotilla", error="invalid_token"`)
			http.Error(w, "credential refused", http.StatusUnauthorized)
			return
		}
		digest, ok := digestOf(r.URL.Path)
		if !ok {
			next.ServeHTTP(w, r) // the store answers 400 for a malformed name
			return
		}
		if g.granted(r, cluster, digest) {
			hubmetrics.CountAuthorization(hubmetrics.AuthorizedGranted)
			next.ServeHTTP(w, r)
			return
		}
		allowed, err := g.assigned(r.Context(), cluster, digest)
		if err != nil {
			http.Error(w, "cannot check assignments", http.StatusServiceUnavailable)
			return
		}
		if !allowed {
			hubmetrics.CountAuthorization(hubmetrics.AuthorizedRefused)
			g.Log.Info("artifact refused: not assigned to the cluster", "cluster", cluster, "digest", digest)
			http.Error(w, "artifact not assigned to cluster "+cluster, http.StatusForbidden)
			return
		}
		hubmetrics.CountAuthorization(hubmetrics.AuthorizedAssigned)
		next.ServeHTTP(w, r)
	})
}

// granted reports whether r's URL carries a grant of digest for the cluster its
// token belongs to. A grant that does not verify (forged, of another cluster or
// digest, of a key no longer trusted) is only logged: the request is looked up as if
// it had none.
func (g *Guard) granted(r *http.Request, cluster, digest string) bool {
	grant := r.URL.Query().Get(storage.GrantParam)
	if grant == "" || g.Grants == nil {
		return false
	}
	if g.Grants.VerifyGrant(cluster, digest, grant) {
		return true
	}
	g.Log.V(1).Info("artifact grant does not verify for the cluster; looking the digest up", "cluster", cluster, "digest", digest)
	return false
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func digestOf(path string) (string, bool) {
	name, ok := strings.CutPrefix(path, storage.PathPrefix)
	if !ok {
		return "", false
	}
	hex, ok := strings.CutSuffix(name, ".tar.gz")
	d := "sha256:" + hex
	return d, ok && storage.ValidDigest(d)
}

// authenticate maps a token to the cluster whose agent it belongs to.
func (g *Guard) authenticate(ctx context.Context, token string) (string, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	ttl := g.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	if ttl > 0 {
		g.mu.Lock()
		rv, ok := g.cache[key]
		g.mu.Unlock()
		if ok && now.Before(rv.expires) {
			return rv.cluster, rv.err
		}
	}
	cluster, err := g.reviewOnce(ctx, key, token)
	var transient *transientError
	if ttl > 0 && !errors.As(err, &transient) {
		g.mu.Lock()
		if g.cache == nil {
			g.cache = map[[32]byte]review{}
		}
		// Expired entries go on every write, so the map stays as small as the fleet.
		for k, v := range g.cache {
			if now.After(v.expires) {
				delete(g.cache, k)
			}
		}
		g.cache[key] = review{cluster: cluster, err: err, expires: now.Add(ttl)}
		g.mu.Unlock()
	}
	return cluster, err
}

type transientError struct{ error }

// reviewOnce reviews token, or waits for the review of it already in flight.
func (g *Guard) reviewOnce(ctx context.Context, key [32]byte, token string) (string, error) {
	g.mu.Lock()
	if p, ok := g.pending[key]; ok {
		g.mu.Unlock()
		select {
		case <-p.done:
			return p.cluster, p.err
		case <-ctx.Done():
			return "", &transientError{ctx.Err()}
		}
	}
	if g.pending == nil {
		g.pending = map[[32]byte]*pendingReview{}
	}
	p := &pendingReview{done: make(chan struct{})}
	g.pending[key] = p
	g.mu.Unlock()
	p.cluster, p.err = g.review(ctx, token)
	g.mu.Lock()
	delete(g.pending, key)
	g.mu.Unlock()
	close(p.done)
	return p.cluster, p.err
}

func (g *Guard) review(ctx context.Context, token string) (string, error) {
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}
	if err := g.Reviewer.Create(ctx, tr); err != nil {
		return "", &transientError{fmt.Errorf("token review: %w", err)}
	}
	if !tr.Status.Authenticated {
		return "", fmt.Errorf("token not authenticated: %s", tr.Status.Error)
	}
	return registration.ClusterFromUsername(tr.Status.User.Username)
}

// assigned reports whether an Assignment of the cluster points at digest. The cache
// answers every request for an assigned digest, if need be after up to CacheWait;
// only a miss after that (or a cache error) costs a List of the cluster's own namespace on the API server, which the agent's credential
// could make directly anyway. The List asks for the latest state (no resourceVersion),
// so it sees every Assignment written before the agent could have heard of it.
func (g *Guard) assigned(ctx context.Context, cluster, digest string) (bool, error) {
	asked := time.Now()
	// The cache's objects are only read here: no copy of them (a rollout asks this
	// once per download, and again while waiting).
	ok, err := g.names(ctx, cluster, digest, client.UnsafeDisableDeepCopy)
	if ok || g.Live == nil {
		return ok, err
	}
	wait := g.CacheWait
	if wait == 0 {
		wait = DefaultCacheWait
	}
	if err == nil && wait > 0 {
		// The cache usually catches up within a moment; waiting for it costs no request.
		deadline := time.Now().Add(wait)
		t := time.NewTicker(cachePoll)
		for err == nil && !ok && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				t.Stop()
				return false, ctx.Err()
			case <-t.C:
			}
			ok, err = g.names(ctx, cluster, digest, client.UnsafeDisableDeepCopy)
		}
		t.Stop()
		if ok {
			return true, nil
		}
	}
	if err != nil {
		g.Log.V(1).Info("cannot read assignments from the cache, reading them live", "cluster", cluster, "error", err.Error())
	}
	digests, err := g.liveDigests(ctx, cluster, asked)
	ok = digests[digest]
	if ok {
		g.Log.V(1).Info("artifact assigned but not yet in the cache", "cluster", cluster, "digest", digest)
	}
	return ok, err
}

// liveDigests returns the digests the Assignments of cluster's namespace point at
// (those signed for it, when Trusted is set), read live.
// A List of ns that started after asked (the request arrived after its agent saw the
// Assignment, so such a List sees it too) is shared rather than sent again: an agent's
// concurrent downloads missing the cache together cost one List, not one each.
func (g *Guard) liveDigests(ctx context.Context, cluster string, asked time.Time) (map[string]bool, error) {
	ns := fleetv1.ClusterNamespace(cluster)
	g.mu.Lock()
	if p := g.lists[ns]; p != nil && !p.started.Before(asked) {
		g.mu.Unlock()
		select {
		case <-p.done:
			return p.digests, p.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if g.lists == nil {
		g.lists = map[string]*pendingList{}
	}
	p := &pendingList{started: time.Now(), done: make(chan struct{})}
	g.lists[ns] = p
	g.mu.Unlock()
	var list fleetv1.AssignmentList
	if p.err = g.Live.List(ctx, &list, client.InNamespace(ns)); p.err == nil {
		p.digests = make(map[string]bool, len(list.Items))
		for i := range list.Items {
			if a := &list.Items[i]; g.signed(cluster, a) {
				p.digests[a.Spec.Artifact.Digest] = true
			}
		}
	}
	g.mu.Lock()
	if g.lists[ns] == p {
		delete(g.lists, ns)
	}
	g.mu.Unlock()
	close(p.done)
	return p.digests, p.err
}

type pendingList struct {
	started time.Time
	done    chan struct{}
	digests map[string]bool
	err     error
}

// names reports whether an Assignment of cluster points at digest.
func (g *Guard) names(ctx context.Context, cluster, digest string, opts ...client.ListOption) (bool, error) {
	var list fleetv1.AssignmentList
	if err := g.Assignments.List(ctx, &list, append(opts, client.InNamespace(fleetv1.ClusterNamespace(cluster)))...); err != nil {
		return false, err
	}
	for i := range list.Items {
		if a := &list.Items[i]; a.Spec.Artifact.Digest == digest && g.signed(cluster, a) {
			return true, nil
		}
	}
	return false, nil
}

// signed reports whether a counts for cluster: its signature verifies with a key the
// hub trusts, or Trusted is nil.
func (g *Guard) signed(cluster string, a *fleetv1.Assignment) bool {
	if g.Trusted == nil {
		return true
	}
	if err := artifact.VerifyStatement(cluster, a, g.Trusted()); err != nil {
		// V(1): the cache is read again every cachePoll while a digest is awaited; the
		// refusal that follows is logged at Info.
		g.Log.V(1).Info("artifact lookup ignores an Assignment whose signature does not verify", "cluster", cluster, "assignment", a.Name, "reason", err.Error())
		return false
	}
	return true
}
