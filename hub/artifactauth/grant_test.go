package artifactauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
	"github.com/flotilla-dev/flotilla/hub/signing"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// agentReviewer authenticates tok-<cluster> as that cluster's agent.
func agentReviewer() client.Client {
	return fake.NewClientBuilder().WithScheme(api.NewScheme()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			tr := obj.(*authenticationv1.TokenReview)
			if cluster, ok := strings.CutPrefix(tr.Spec.Token, "tok-"); ok {
				tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true,
					User: authenticationv1.UserInfo{Username: registration.ServiceAccountUsername(cluster)}}
			}
			return nil
		},
	}).Build()
}

// countingReader answers every List with err (or, when err is nil, from the objects)
// and counts the calls.
func countingReader(calls *atomic.Int32, err error, objs ...client.Object) client.Reader {
	return fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			calls.Add(1)
			if err != nil {
				return err
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()
}

func newKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	k, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return artifact.KeyID(k.Public().(ed25519.PublicKey)), k
}

func grantedGet(t *testing.T, h http.Handler, token, digest, grant string) int {
	t.Helper()
	u := path(digest)
	if grant != "" {
		u = storage.GrantedURL(u, grant)
	}
	req := httptest.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestGuardServesGrantsWithoutLookup: a download whose URL carries a valid grant for
// the token's own cluster is served while both Assignment readers fail, which is the
// 403 race right after a new Assignment gone; anything else is looked up as before.
func TestGuardServesGrantsWithoutLookup(t *testing.T) {
	id, key := newKey(t)
	keys := signing.NewKeyring(&signing.State{Keys: map[string]ed25519.PrivateKey{id: key}, Active: id, Sequence: 1})
	var cached, live atomic.Int32
	down := errors.New("no Assignment may be read")
	g := &Guard{Reviewer: agentReviewer(), Grants: keys, CacheWait: -1,
		Assignments: countingReader(&cached, down), Live: countingReader(&live, down)}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))

	if code := grantedGet(t, h, "tok-a", digestA, keys.Grant("a", digestA)); code != http.StatusTeapot {
		t.Fatalf("granted download: got %d, want %d", code, http.StatusTeapot)
	}
	if cached.Load() != 0 || live.Load() != 0 {
		t.Fatalf("a granted download read Assignments: %d cached and %d live Lists", cached.Load(), live.Load())
	}
	// Without a grant the same request needs the readers, which cannot answer.
	if code := grantedGet(t, h, "tok-a", digestA, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("ungranted download with the readers down: got %d, want %d", code, http.StatusServiceUnavailable)
	}
	if cached.Load() == 0 || live.Load() == 0 {
		t.Fatalf("an ungranted download was not looked up: %d cached and %d live Lists", cached.Load(), live.Load())
	}
}

// TestGuardRefusesWhatNoGrantCovers: without a grant that verifies for (the token's
// cluster, the path's digest), a request falls back to the Assignment lookup, which
// refuses what is not assigned to the cluster; a grant never lets another cluster in.
func TestGuardRefusesWhatNoGrantCovers(t *testing.T) {
	oldID, oldKey := newKey(t)
	newID, rotatedKey := newKey(t)
	otherID, otherKey := newKey(t)
	keys := signing.NewKeyring(&signing.State{Keys: map[string]ed25519.PrivateKey{oldID: oldKey}, Active: oldID, Sequence: 1})
	oldGrant := keys.Grant("a", digestA)
	keys.Set(&signing.State{Keys: map[string]ed25519.PrivateKey{oldID: oldKey, newID: rotatedKey}, Active: newID, Sequence: 2})
	otherHub := signing.NewKeyring(&signing.State{Keys: map[string]ed25519.PrivateKey{otherID: otherKey}, Active: otherID, Sequence: 1})

	// Cluster a is assigned digestA only; cluster b digestB only.
	objs := []client.Object{
		&fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("a"), Name: "x"}, Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digestA}}},
		&fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace("b"), Name: "x"}, Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digestB}}},
	}
	var lookups, live atomic.Int32
	g := &Guard{Reviewer: agentReviewer(), Grants: keys, CacheWait: -1,
		Assignments: countingReader(&lookups, nil, objs...), Live: countingReader(&live, nil, objs...)}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))

	// Well-formed (version 1, 128 bits) but made with no key of the hub.
	forged := base64.RawURLEncoding.EncodeToString(append([]byte{1}, bytes.Repeat([]byte{7}, 16)...))
	for _, tc := range []struct {
		name, token, digest, grant string
		want                       int
		lookedUp                   bool
	}{
		{"granted by the active key", "tok-b", digestB, keys.Grant("b", digestB), http.StatusTeapot, false},
		{"granted by a rotated-out key still trusted", "tok-a", digestA, oldGrant, http.StatusTeapot, false},
		{"cluster b's URL with cluster a's token", "tok-a", digestB, keys.Grant("b", digestB), http.StatusForbidden, true},
		{"cluster a's grant for another digest", "tok-a", digestB, keys.Grant("a", digestA), http.StatusForbidden, true},
		{"a forged grant", "tok-a", digestB, forged, http.StatusForbidden, true},
		{"another hub's grant", "tok-a", digestB, otherHub.Grant("a", digestB), http.StatusForbidden, true},
		{"no grant, not assigned", "tok-a", digestB, "", http.StatusForbidden, true},
		{"no grant, assigned", "tok-a", digestA, "", http.StatusTeapot, true},
		{"an invalid grant, assigned", "tok-a", digestA, "nonsense", http.StatusTeapot, true},
		{"granted, but an unknown token", "nope", digestA, keys.Grant("a", digestA), http.StatusUnauthorized, false},
	} {
		before := lookups.Load()
		if code := grantedGet(t, h, tc.token, tc.digest, tc.grant); code != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, code, tc.want)
		}
		if lookedUp := lookups.Load() != before; lookedUp != tc.lookedUp {
			t.Errorf("%s: looked up %v, want %v", tc.name, lookedUp, tc.lookedUp)
		}
	}

	// Once the key that made a grant is retired, the grant is worth nothing: cluster
	// a still downloads digestA because it is assigned, but only after a lookup.
	keys.Set(&signing.State{Keys: map[string]ed25519.PrivateKey{newID: rotatedKey}, Active: newID, Sequence: 3})
	before := lookups.Load()
	if code := grantedGet(t, h, "tok-a", digestA, oldGrant); code != http.StatusTeapot || lookups.Load() == before {
		t.Errorf("a retired key's grant: got %d after %d lookups, want %d after one", code, lookups.Load()-before, http.StatusTeapot)
	}
}

// TestGuardLooksUpOnlySignedAssignments: with Trusted set, the lookup counts an
// Assignment only when its signature verifies for the cluster, in the cache and in
// the live read alike. An unsigned Assignment written into a cluster's namespace, or
// one signed for another cluster and copied there, does not make its digest
// downloadable for that cluster.
func TestGuardLooksUpOnlySignedAssignments(t *testing.T) {
	id, key := newKey(t)
	keys := signing.NewKeyring(&signing.State{Keys: map[string]ed25519.PrivateKey{id: key}, Active: id, Sequence: 1})
	digestC := "sha256:" + strings.Repeat("c", 64)
	assignment := func(cluster, signFor, name, digest string) *fleetv1.Assignment {
		a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1.ClusterNamespace(cluster), Name: name},
			Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: digest}}}
		if signFor != "" {
			sig, err := keys.SignStatement(signFor, a)
			if err != nil {
				t.Fatal(err)
			}
			a.Spec.Artifact.Signature = sig
		}
		return a
	}
	objs := []client.Object{
		assignment("a", "a", "signed", digestA),
		assignment("a", "", "unsigned", digestB), // written by someone without the key
		assignment("a", "b", "copied", digestC),  // cluster b's, copied into a's namespace
		assignment("b", "b", "signed", digestC),  // b's own
	}
	for _, tc := range []struct {
		name   string
		cached client.Reader
		live   client.Reader
	}{
		{"from the cache", countingReader(new(atomic.Int32), nil, objs...), nil},
		{"read live", countingReader(new(atomic.Int32), nil), countingReader(new(atomic.Int32), nil, objs...)},
	} {
		g := &Guard{Reviewer: agentReviewer(), CacheWait: -1, Assignments: tc.cached, Live: tc.live, Trusted: keys.PublicKeys}
		h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
		for _, want := range []struct {
			token, digest string
			code          int
		}{
			{"tok-a", digestA, http.StatusTeapot},
			{"tok-a", digestB, http.StatusForbidden},
			{"tok-a", digestC, http.StatusForbidden},
			{"tok-b", digestC, http.StatusTeapot},
		} {
			if code := grantedGet(t, h, want.token, want.digest, ""); code != want.code {
				t.Errorf("%s: %s asking for %s: got %d, want %d", tc.name, want.token, want.digest, code, want.code)
			}
		}
	}
	// Without Trusted, the same objects let the unsigned one through: the check is
	// what refuses it above.
	g := &Guard{Reviewer: agentReviewer(), CacheWait: -1, Assignments: countingReader(new(atomic.Int32), nil, objs...)}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if code := grantedGet(t, h, "tok-a", digestB, ""); code != http.StatusTeapot {
		t.Errorf("without Trusted, an unsigned Assignment's digest: got %d, want %d", code, http.StatusTeapot)
	}
}
