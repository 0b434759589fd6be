package registration

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
)

// DefaultCredentialTTL is the lifetime of an agent's hub credential. It is long
// because revocation, not expiry, is how a credential is taken away; rotation is a
// new registration.
const DefaultCredentialTTL = 365 * 24 * time.Hour

// MaxClusterNameLength keeps flotilla-cluster-<name> a valid namespace name.
const MaxClusterNameLength = validation.DNS1123LabelMaxLength - len(fleetv1.ClusterNamespacePrefix)

// Server serves POST /register: it trades a bootstrap token for a credential.
//
// The credential is a TokenRequest for the agent's ServiceAccount rather than a
// kubernetes.io/service-account-token Secret: the latter needs kube-controller-manager's
// token controller, which a bare API server (tests, the dev fleet) does not run, while
// TokenRequest only needs the API server's service-account signing key.
type Server struct {
	// Client reaches the hub's API server directly; it must not be a cache, or every
	// Secret of the hub would be cached.
	Client client.Client
	// SystemNamespace holds the bootstrap token Secrets.
	SystemNamespace string
	// HubServer and HubCAData are what agents use to reach the hub's API server.
	HubServer string
	HubCAData []byte
	// ArtifactCA is the PEM CA that verifies the artifact server's certificate.
	ArtifactCA []byte
	// ArtifactURL is the artifact server's base URL, handed to agents.
	ArtifactURL string
	// TrustedKeys returns the PEM public keys that sign artifacts.
	TrustedKeys func(context.Context) (string, error)
	// CredentialTTL is the lifetime of issued credentials; DefaultCredentialTTL when zero.
	CredentialTTL time.Duration
	Log           logr.Logger
}

// errRefused is the one answer to every bad token, so that a caller learns nothing
// about which check failed.
var errRefused = errors.New("invalid, used or expired bootstrap token")

type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, registration.Error{Message: "method not allowed"})
		return
	}
	var req registration.Request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, registration.Error{Message: "malformed request: " + err.Error()})
		return
	}
	log := s.Log.WithValues("cluster", req.Cluster, "remote", r.RemoteAddr)
	resp, err := s.register(r.Context(), req)
	if err != nil {
		code := http.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			code = he.code
		}
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "2")
		}
		log.Info("registration refused", "code", code, "reason", err.Error())
		writeJSON(w, code, registration.Error{Message: err.Error()})
		return
	}
	log.Info("cluster registered", "namespace", resp.Namespace)
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) register(ctx context.Context, req registration.Request) (*registration.Response, error) {
	if errs := validation.IsDNS1123Label(req.Cluster); len(errs) > 0 || len(req.Cluster) > MaxClusterNameLength || req.Token == "" {
		return nil, &httpError{http.StatusBadRequest, errors.New("cluster must be a DNS label of at most 46 characters, and token must be set")}
	}
	var secret corev1.Secret
	err := s.Client.Get(ctx, types.NamespacedName{Namespace: s.SystemNamespace, Name: BootstrapTokenSecretName(req.Cluster)}, &secret)
	if apierrors.IsNotFound(err) {
		return nil, &httpError{http.StatusUnauthorized, errRefused}
	}
	if err != nil {
		return nil, err
	}
	if !tokenMatches(&secret, req) {
		return nil, &httpError{http.StatusUnauthorized, errRefused}
	}

	var cl fleetv1.Cluster
	if err := s.Client.Get(ctx, types.NamespacedName{Name: req.Cluster}, &cl); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &httpError{http.StatusNotFound, fmt.Errorf("cluster %s is not registered on the hub", req.Cluster)}
		}
		return nil, err
	}
	ns := fleetv1.ClusterNamespace(req.Cluster)
	var nsObj corev1.Namespace
	if err := s.Client.Get(ctx, types.NamespacedName{Name: ns}, &nsObj); err != nil || nsObj.DeletionTimestamp != nil || cl.DeletionTimestamp != nil {
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		// The Cluster controller has not made the namespace yet: the token stays valid.
		return nil, &httpError{http.StatusServiceUnavailable, fmt.Errorf("hub namespace %s is not ready yet", ns)}
	}

	// Access first, consumption second: a failure here leaves the token usable, and
	// the objects are the same however often this runs.
	sa, err := ensureAgentAccess(ctx, s.Client, req.Cluster)
	if err != nil {
		return nil, fmt.Errorf("agent access: %w", err)
	}
	trusted, err := s.TrustedKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	// The preconditions make the token single-use: of two registrations racing with
	// it, only one deletes this exact version of the Secret.
	err = s.Client.Delete(ctx, &secret, client.Preconditions{UID: &secret.UID, ResourceVersion: &secret.ResourceVersion})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil, &httpError{http.StatusUnauthorized, errRefused}
	}
	if err != nil {
		return nil, err
	}

	ttl := s.CredentialTTL
	if ttl <= 0 {
		ttl = DefaultCredentialTTL
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(ttl / time.Second))}}
	if err := s.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return nil, fmt.Errorf("issue credential: %w", err)
	}
	return &registration.Response{
		Cluster:             req.Cluster,
		Namespace:           ns,
		Server:              s.HubServer,
		CAData:              s.HubCAData,
		Token:               tr.Status.Token,
		ExpirationTimestamp: tr.Status.ExpirationTimestamp.UTC().Format(time.RFC3339),
		TrustedKeys:         trusted,
		ArtifactCA:          string(s.ArtifactCA),
		ArtifactURL:         s.ArtifactURL,
	}, nil
}

// tokenMatches checks hash, cluster and expiry; the hash comparison takes the same
// time whatever the token.
func tokenMatches(s *corev1.Secret, req registration.Request) bool {
	if s.Type != BootstrapTokenSecretType {
		return false
	}
	hashOK := subtle.ConstantTimeCompare([]byte(hashToken(req.Token)), s.Data[tokenKeyHash]) == 1
	clusterOK := subtle.ConstantTimeCompare([]byte(req.Cluster), s.Data[tokenKeyCluster]) == 1
	expires, err := time.Parse(time.RFC3339, string(s.Data[tokenKeyExpiration]))
	return hashOK && clusterOK && err == nil && time.Now().Before(expires)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
