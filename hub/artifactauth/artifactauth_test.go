package artifactauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
