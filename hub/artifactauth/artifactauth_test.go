package artifactauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/flotilla-dev/flotilla/api"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
)

var (
	digestA = "sha256:" + strings.Repeat("a", 64)
	digestB = "sha256:" + strings.Repeat("b", 64)
)

func path(d string) string {
	return "/artifacts/sha256/" + strings.TrimPrefix(d, "sha256:") + ".tar.gz"
}

func TestGuard(t *testing.T) {
	users := map[string]string{"tok-a": registration.ServiceAccountUsername("a"), "tok-admin": "admin"}
	reviews := 0
	reviewer := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			tr := obj.(*authenticationv1.TokenReview)
			reviews++
			if tr.Spec.Token == "tok-down" {
				return errors.New("api server down")
			}
			if u, ok := users[tr.Spec.Token]; ok {
				tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: u}}
			}
			return nil
		},
	}).Build()
	assignments := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(
		&fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("a"), Name: "x"}, Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digestA}}},
		&fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("b"), Name: "x"}, Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digestB}}},
	).Build()
	g := &Guard{Reviewer: reviewer, Assignments: assignments}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))

	for _, tc := range []struct {
		name, auth, path string
		want             int
	}{
		{"no credential", "", path(digestA), http.StatusUnauthorized},
		{"not bearer", "Basic eDp5", path(digestA), http.StatusUnauthorized},
		{"unknown token", "Bearer nope", path(digestA), http.StatusUnauthorized},
		{"not an agent", "Bearer tok-admin", path(digestA), http.StatusUnauthorized},
		{"assigned", "Bearer tok-a", path(digestA), http.StatusTeapot},
		{"another cluster's", "Bearer tok-a", path(digestB), http.StatusForbidden},
		{"unassigned", "Bearer tok-a", path("sha256:" + strings.Repeat("c", 64)), http.StatusForbidden},
		{"api server down", "Bearer tok-down", path(digestA), http.StatusServiceUnavailable},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, rec.Code, tc.want)
		}
	}
	before := reviews
	req := httptest.NewRequest(http.MethodGet, path(digestA), nil)
	req.Header.Set("Authorization", "Bearer tok-a")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if reviews != before {
		t.Errorf("a recent review was not reused")
	}
}

// TestGuardConfirmsCacheMissLive reproduces the race an agent meets right after a new
// Assignment: it saw the Assignment through its own watch on the API server, but the
// hub's cache has not caught up yet. The download must not be refused for that, and a
// digest assigned nowhere (or to another cluster) still must be.
func TestGuardConfirmsCacheMissLive(t *testing.T) {
	reviewer := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			tr := obj.(*authenticationv1.TokenReview)
			if tr.Spec.Token == "tok-a" {
				tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: registration.ServiceAccountUsername("a")}}
			}
			return nil
		},
	}).Build()
	assignment := func(cluster, digest string) *fleetv1.Assignment {
		return &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(cluster), Name: "x-" + digest[7:15]},
			Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digest}}}
	}
	digestC := "sha256:" + strings.Repeat("c", 64)
	digestD := "sha256:" + strings.Repeat("d", 64)
	cachedA := assignment("a", digestA)
	newB := assignment("a", digestB)   // written after the cache's last event
	otherD := assignment("b", digestD) // another cluster's

	// The cache has only seen the first Assignment; the API server has all of them.
	lagging := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(cachedA.DeepCopy()).Build()
	liveLists, liveDown := 0, false
	live := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(cachedA, newB, otherD).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			liveLists++
			if liveDown {
				return errors.New("api server down")
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()

	get := func(g *Guard, d string) int {
		h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
		req := httptest.NewRequest(http.MethodGet, path(d), nil)
		req.Header.Set("Authorization", "Bearer tok-a")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}

	// Without the live look, the race shows: the new Assignment's artifact is refused.
	if code := get(&Guard{Reviewer: reviewer, Assignments: lagging}, digestB); code != http.StatusForbidden {
		t.Fatalf("the race did not reproduce: a cache-only guard answered %d for an Assignment the cache has not seen", code)
	}

	g := &Guard{Reviewer: reviewer, Assignments: lagging, Live: live, CacheWait: 150 * time.Millisecond}
	for _, tc := range []struct {
		name      string
		digest    string
		liveDown  bool
		want      int
		liveLists int // live Lists the request may make
	}{
		{"in the cache: no API call", digestA, false, http.StatusTeapot, 0},
		{"not yet in the cache: confirmed live", digestB, false, http.StatusTeapot, 1},
		{"assigned nowhere", digestC, false, http.StatusForbidden, 1},
		{"assigned to another cluster", digestD, false, http.StatusForbidden, 1},
		{"cache miss, API server down", digestB, true, http.StatusServiceUnavailable, 1},
		{"in the cache, API server down", digestA, true, http.StatusTeapot, 0},
	} {
		liveDown = tc.liveDown
		before := liveLists
		if code := get(g, tc.digest); code != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, code, tc.want)
		}
		if n := liveLists - before; n != tc.liveLists {
			t.Errorf("%s: %d live Lists, want %d", tc.name, n, tc.liveLists)
		}
	}
	liveDown = false

	// A cache that cannot answer at all (not started, not synced) falls back to the
	// live read too.
	broken := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithInterceptorFuncs(interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
			return &cache.ErrCacheNotStarted{}
		},
	}).Build()
	for d, want := range map[string]int{digestB: http.StatusTeapot, digestC: http.StatusForbidden} {
		if code := get(&Guard{Reviewer: reviewer, Assignments: broken, Live: live, CacheWait: -1}, d); code != want {
			t.Errorf("cache not started, digest %s…: got %d, want %d", d[:12], code, want)
		}
	}
}

// TestGuardWaitsForTheCache: a digest the hub's cache shows a moment after the agent
// asks for it is served without a request to the API server; one the cache never
// shows is looked up live after CacheWait, and refused if it is assigned nowhere.
func TestGuardWaitsForTheCache(t *testing.T) {
	reviewer := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			tr := obj.(*authenticationv1.TokenReview)
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: registration.ServiceAccountUsername("a")}}
			return nil
		},
	}).Build()
	newA := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("a"), Name: "x"},
		Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digestA}}}
	// The cache shows the Assignment from 300 ms after the first look.
	var firstLook atomic.Pointer[time.Time]
	lagging := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(newA.DeepCopy()).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			now := time.Now()
			firstLook.CompareAndSwap(nil, &now)
			if time.Since(*firstLook.Load()) < 300*time.Millisecond {
				return nil // an empty list: not seen yet
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()
	var liveLists atomic.Int32
	live := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(newA).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			liveLists.Add(1)
			return c.List(ctx, list, opts...)
		},
	}).Build()
	wait := time.Second
	h := (&Guard{Reviewer: reviewer, Assignments: lagging, Live: live, CacheWait: wait}).Wrap(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	get := func(d string) (int, time.Duration) {
		req := httptest.NewRequest(http.MethodGet, path(d), nil)
		req.Header.Set("Authorization", "Bearer tok-a")
		rec := httptest.NewRecorder()
		began := time.Now()
		h.ServeHTTP(rec, req)
		return rec.Code, time.Since(began)
	}

	code, took := get(digestA)
	if code != http.StatusTeapot || liveLists.Load() != 0 {
		t.Errorf("a digest the cache shows after 300 ms: %d with %d live Lists; want %d with none", code, liveLists.Load(), http.StatusTeapot)
	}
	if took < 300*time.Millisecond || took > wait {
		t.Errorf("served after %s; want between the cache's 300 ms and the wait's %s", took, wait)
	}

	code, took = get(digestB)
	if code != http.StatusForbidden || liveLists.Load() != 1 {
		t.Errorf("a digest assigned nowhere: %d with %d live Lists; want %d after one", code, liveLists.Load(), http.StatusForbidden)
	}
	if took < wait {
		t.Errorf("refused after %s, before the wait of %s", took, wait)
	}
}

// TestGuardReviewsATokenOnce: an agent downloads several artifacts at once (the
// agent's workers, a rollout of several deployments); its requests share one
// TokenReview instead of sending one each before the first answer is cached.
func TestGuardReviewsATokenOnce(t *testing.T) {
	var reviews atomic.Int32
	reviewer := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			reviews.Add(1)
			time.Sleep(200 * time.Millisecond) // an API server under load
			tr := obj.(*authenticationv1.TokenReview)
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: registration.ServiceAccountUsername("a")}}
			return nil
		},
	}).Build()
	assignments := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(
		&fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("a"), Name: "x"}, Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digestA}}},
	).Build()
	h := (&Guard{Reviewer: reviewer, Assignments: assignments}).Wrap(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	const n = 8
	codes := make(chan int, n)
	for range n {
		go func() {
			req := httptest.NewRequest(http.MethodGet, path(digestA), nil)
			req.Header.Set("Authorization", "Bearer tok-a")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			codes <- rec.Code
		}()
	}
	for range n {
		if code := <-codes; code != http.StatusTeapot {
			t.Errorf("got %d, want %d", code, http.StatusTeapot)
		}
	}
	if got := reviews.Load(); got != 1 {
		t.Errorf("%d concurrent requests of one token made %d TokenReviews, want 1", n, got)
	}
}

// TestGuardSharesLiveLists: an agent's concurrent downloads that all miss a lagging
// cache share one live List of the cluster's namespace, and each is still answered
// for its own digest.
func TestGuardSharesLiveLists(t *testing.T) {
	reviewer := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			tr := obj.(*authenticationv1.TokenReview)
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: registration.ServiceAccountUsername("a")}}
			return nil
		},
	}).Build()
	digest := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	var objs []client.Object
	for _, c := range []string{"a", "b", "c"} {
		objs = append(objs, &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("a"), Name: "x-" + c},
			Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digest(c)}}})
	}
	empty := fake.NewClientBuilder().WithScheme(api.NewScheme()).Build() // a cache that has seen none of them
	var liveLists atomic.Int32
	live := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			liveLists.Add(1)
			time.Sleep(200 * time.Millisecond) // an API server under load
			return c.List(ctx, list, opts...)
		},
	}).Build()
	h := (&Guard{Reviewer: reviewer, Assignments: empty, Live: live, CacheWait: 300 * time.Millisecond}).Wrap(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	want := map[string]int{digest("a"): http.StatusTeapot, digest("b"): http.StatusTeapot, digest("c"): http.StatusTeapot,
		digest("d"): http.StatusForbidden}
	type answer struct {
		digest string
		code   int
	}
	answers := make(chan answer, len(want))
	for d := range want {
		go func() {
			req := httptest.NewRequest(http.MethodGet, path(d), nil)
			req.Header.Set("Authorization", "Bearer tok-a")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			answers <- answer{d, rec.Code}
		}()
	}
	for range want {
		a := <-answers
		if a.code != want[a.digest] {
			t.Errorf("digest %s…: got %d, want %d", a.digest[:12], a.code, want[a.digest])
		}
	}
	if n := liveLists.Load(); n != 1 {
		t.Errorf("%d concurrent cache misses of one cluster made %d live Lists, want 1", len(want), n)
	}
}
