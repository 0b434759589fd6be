package helm

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/source/reconcile"
)

// ControllerName names the controller, its logger and its events.
const ControllerName = "helmrepository"

// Repository types of spec.type.
const (
	TypeDefault = "default"
	TypeOCI     = "oci"
)

// DefaultInterval applies when the spec leaves spec.interval out (the CRD defaults
// it too).
const DefaultInterval = 10 * time.Minute

// Reconciler is the HelmRepository controller: the dependencies every source kind is
// given (see reconcile.Deps) and Fetch, around which hub/source/reconcile
// runs the loop.
type Reconciler reconcile.Deps

// kind is what the loop needs to know about HelmRepositories besides Fetch.
var kind = reconcile.Kind[*sourcev1.HelmRepository]{
	Name:            sourcev1.HelmRepositoryKind,
	DefaultInterval: DefaultInterval,
	FailureReason:   sourcev1.IndexationFailedReason,
	Noun:            "index",
	// An OCI repository has no index: charts come one by one.
	KeepsArtifact: func(o *sourcev1.HelmRepository) bool { return o.Spec.Type != TypeOCI },
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return reconcile.Setup(mgr, ControllerName, (*reconcile.Deps)(r), kind, r)
}

// Fetch downloads and stores the index of a default repository, or checks that an
// oci one is reachable.
func (r *Reconciler) Fetch(ctx context.Context, obj *sourcev1.HelmRepository) (reconcile.Fetched, error) {
	if obj.Spec.Type == TypeOCI {
		return r.checkOCI(ctx, obj)
	}
	u, err := indexURL(obj.Spec.URL)
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Stalled, meta.InvalidURLReason, err)
	}
	creds, err := credentials.Load(ctx, r.APIReader, obj.Namespace, obj.Spec.SecretRef, credentials.Options{Scheme: schemeOf(u)})
	if err != nil {
		return reconcile.Fetched{}, err
	}
	index, err := get(ctx, creds, r.Transport, u, MaxIndexSize)
	if err != nil {
		return reconcile.Fetched{}, err
	}
	idx, err := parseIndex(index)
	if err != nil {
		// Only the repository's owner can fix it; the next interval looks again.
		return reconcile.Fetched{}, outcome.Fail(outcome.Waiting, sourcev1.InvalidArtifactReason, err)
	}
	packed, err := artifact.Pack(map[string][]byte{IndexFile: index})
	var digest string
	if err == nil {
		digest, err = r.Store.Put(packed)
	}
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Transient, meta.StorageOperationFailedReason, err)
	}
	size := int64(len(packed))
	revision := indexRevision(index)
	return reconcile.Fetched{
		Artifact: &meta.Artifact{URL: r.Store.URL(digest), Revision: revision, Digest: digest, Size: &size},
		Message:  fmt.Sprintf("stored index revision %s with %d charts", revision, len(idx.Entries)),
	}, nil
}

// checkOCI checks the URL and, where the registry hands out tokens, the credentials.
func (r *Reconciler) checkOCI(ctx context.Context, obj *sourcev1.HelmRepository) (reconcile.Fetched, error) {
	raw := obj.Spec.URL
	rest, ok := strings.CutPrefix(raw, "oci://")
	if !ok {
		return reconcile.Fetched{}, outcome.Fail(outcome.Stalled, meta.InvalidURLReason, fmt.Errorf("%w %q: type oci needs an oci:// URL", errInvalidURL, raw))
	}
	repo, err := name.NewRepository(strings.TrimSuffix(rest, "/"), name.StrictValidation)
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Stalled, meta.InvalidURLReason, fmt.Errorf("%w %q: %v", errInvalidURL, raw, err))
	}
	creds, err := credentials.Load(ctx, r.APIReader, obj.Namespace, obj.Spec.SecretRef, credentials.Options{Scheme: "oci", Registry: repo.RegistryStr()})
	if err != nil {
		return reconcile.Fetched{}, err
	}
	rt, err := creds.Transport(r.Transport)
	if err != nil {
		return reconcile.Fetched{}, err
	}
	auth := authn.Anonymous
	if creds.HasBasic() {
		auth = authn.FromConfig(authn.AuthConfig{Username: creds.Username, Password: creds.Password})
	}
	if _, err := transport.NewWithContext(ctx, repo.Registry, auth, rt, []string{repo.Scope(transport.PullScope)}); err != nil {
		if credentials.Refused(err) {
			return reconcile.Fetched{}, outcome.Fail(outcome.Transient, sourcev1.AuthenticationFailedReason, err)
		}
		return reconcile.Fetched{}, err
	}
	return reconcile.Fetched{Message: "OCI repository " + raw + " is reachable; charts are pulled when a HelmRelease asks for them"}, nil
}

func schemeOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme
}
