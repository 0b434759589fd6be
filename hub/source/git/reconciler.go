package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	ctrlreconcile "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/credentials"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/source/reconcile"
)

// ControllerName names the controller, its logger and its events.
const ControllerName = "gitrepository"

// DefaultInterval applies when the spec leaves spec.interval out (the CRD defaults
// it too).
const DefaultInterval = time.Minute

// Reconciler is the GitRepository controller: the dependencies every source kind is
// given (see reconcile.Deps; Transport is not used) and Fetch, around which hub/source/reconcile
// runs the loop.
type Reconciler reconcile.Deps

// kind is what the loop needs to know about GitRepositories besides Fetch.
var kind = reconcile.Kind[*sourcev1.GitRepository]{
	Name:            sourcev1.GitRepositoryKind,
	DefaultInterval: DefaultInterval,
	FailureReason:   meta.GitOperationFailedReason,
}

// SetupWithManager registers the controller. Besides its own spec, a GitRepository
// is reconciled when a repository it includes stores a new artifact.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &sourcev1.GitRepository{}, includeIndex, includedNames); err != nil {
		return err
	}
	k := kind
	k.Watch = func(b *builder.Builder) *builder.Builder {
		return b.Watches(&sourcev1.GitRepository{},
			handler.EnqueueRequestsFromMapFunc(r.includers),
			builder.WithPredicates(reconcile.ArtifactChangedPredicate{}))
	}
	return reconcile.Setup(mgr, ControllerName, (*reconcile.Deps)(r), k, r)
}

// includers maps a GitRepository to the repositories of its namespace that include it.
func (r *Reconciler) includers(ctx context.Context, o client.Object) []ctrlreconcile.Request {
	var list sourcev1.GitRepositoryList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{includeIndex: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing the repositories that include one", "gitrepository", client.ObjectKeyFromObject(o))
		return nil
	}
	out := make([]ctrlreconcile.Request, 0, len(list.Items))
	for _, gr := range list.Items {
		out = append(out, ctrlreconcile.Request{NamespacedName: client.ObjectKeyFromObject(&gr)})
	}
	return out
}

// Fetch clones the repository, verifies it when asked, packs the files and stores
// the artifact. Verification comes before anything is stored, so an unverified
// revision is never served. It keeps SourceVerified up to date.
func (r *Reconciler) Fetch(ctx context.Context, obj *sourcev1.GitRepository) (reconcile.Fetched, error) {
	if obj.Spec.Verify == nil {
		// Without spec.verify there is nothing to say about signatures.
		conditions.Remove(obj, meta.SourceVerifiedCondition)
	}
	rm, err := r.remote(ctx, obj)
	if err != nil {
		return reconcile.Fetched{}, err
	}
	release, err := restrictRemote(ctx, &rm)
	if err != nil {
		return reconcile.Fetched{}, err
	}
	defer release()
	var keys keyRing
	if v := obj.Spec.Verify; v != nil {
		if v.Mode == VerifyTag && (obj.Spec.Ref == nil || (obj.Spec.Ref.Tag == "" && obj.Spec.Ref.SemVer == "" &&
			!plumbing.ReferenceName(obj.Spec.Ref.Name).IsTag())) {
			return reconcile.Fetched{}, notVerified(obj, outcome.Stalled, meta.VerificationFailedReason,
				errors.New("spec.verify.mode Tag needs spec.ref.tag, spec.ref.semver or a spec.ref.name under refs/tags/"))
		}
		if keys, err = r.verificationKeys(ctx, obj); err != nil {
			return reconcile.Fetched{}, err
		}
	}

	dir, err := os.MkdirTemp("", "flotilla-gitrepository-")
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Transient, meta.StorageOperationFailedReason, err)
	}
	defer os.RemoveAll(dir)

	ctrl.LoggerFrom(ctx).V(1).Info("fetching", "url", credentials.Redact(rm.URL), "auth", authName(rm.Auth))
	revision, err := checkout(ctx, dir, rm, obj.Spec.Ref)
	if errors.Is(err, errNoMatchingTag) {
		// Retrying at once cannot help; a new tag can.
		return reconcile.Fetched{}, outcome.Fail(outcome.Waiting, "", err)
	}
	if err != nil {
		return reconcile.Fetched{}, err // transient, or stalled on an invalid range
	}

	if v := obj.Spec.Verify; v != nil {
		tag := ""
		if i := strings.LastIndex(revision, "@sha1:"); i > 0 {
			tag = revision[:i]
		}
		signer, err := verifyCheckout(dir, v.Mode, tag, keys)
		if err != nil {
			class := outcome.Transient
			if errors.Is(err, errNotVerified) {
				class = outcome.Waiting
			}
			return reconcile.Fetched{}, notVerified(obj, class, meta.VerificationFailedReason, fmt.Errorf("revision %s: %w", revision, err))
		}
		what := "commit"
		if v.Mode == VerifyTag {
			what = "tag"
		}
		conditions.Set(obj, meta.SourceVerifiedCondition, metav1.ConditionTrue, meta.SucceededReason,
			fmt.Sprintf("%s of revision %s is signed by %s", what, revision, signer))
	}

	skip, err := ignoreMatcher(dir, obj.Spec.Ignore)
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Transient, meta.StorageOperationFailedReason, err)
	}
	files, err := artifact.ReadDir(dir, skip)
	if err != nil {
		// The commit's content is at fault (a link out of the repository, say): only
		// a new commit helps, and the next interval looks for one.
		return reconcile.Fetched{}, outcome.Fail(outcome.Waiting, meta.StorageOperationFailedReason, fmt.Errorf("revision %s: %w", revision, err))
	}
	included, err := r.include(ctx, obj, files)
	if err != nil {
		return reconcile.Fetched{}, err
	}
	data, err := artifact.Pack(files)
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Waiting, meta.StorageOperationFailedReason, fmt.Errorf("revision %s: %w", revision, err))
	}
	digest, err := r.Store.Put(data)
	if err != nil {
		return reconcile.Fetched{}, outcome.Fail(outcome.Transient, meta.StorageOperationFailedReason, err)
	}
	obj.Status.IncludedArtifacts = included
	size := int64(len(data))
	return reconcile.Fetched{Artifact: &meta.Artifact{URL: r.Store.URL(digest), Revision: revision, Digest: digest, Size: &size}}, nil
}

// notVerified records SourceVerified=False for a failure of verification itself
// (not of, say, the network, which says nothing about signatures) and classifies it.
func notVerified(obj *sourcev1.GitRepository, class outcome.Class, reason string, err error) error {
	conditions.Set(obj, meta.SourceVerifiedCondition, metav1.ConditionFalse, meta.VerificationFailedReason, err.Error())
	return outcome.Fail(class, reason, err)
}

// verificationKeys reads the OpenPGP public keys of spec.verify.secretRef.
func (r *Reconciler) verificationKeys(ctx context.Context, obj *sourcev1.GitRepository) (keyRing, error) {
	name := obj.Spec.Verify.SecretRef.Name
	data, err := credentials.Read(ctx, r.APIReader, obj.Namespace, name)
	var missing *outcome.Failure
	if errors.As(err, &missing) {
		// No keys, nothing can be verified.
		return keyRing{}, notVerified(obj, missing.Class, missing.Reason, err)
	}
	if err != nil {
		// The API server's trouble says nothing about signatures.
		return keyRing{}, outcome.Fail(outcome.Transient, meta.VerificationFailedReason, err)
	}
	kr, err := newKeyRing(data)
	if err != nil {
		// Like credentials that cannot be used: someone fixes the Secret.
		return keyRing{}, notVerified(obj, outcome.Transient, meta.VerificationFailedReason, fmt.Errorf("verification secret %s: %w", name, err))
	}
	return kr, nil
}

// remote checks the URL and reads the credentials.
func (r *Reconciler) remote(ctx context.Context, obj *sourcev1.GitRepository) (remote, error) {
	u, err := parseURL(obj.Spec.URL)
	if err != nil {
		return remote{}, outcome.Fail(outcome.Stalled, meta.InvalidURLReason, err)
	}
	var data map[string][]byte
	if ref := obj.Spec.SecretRef; ref != nil {
		if data, err = credentials.Read(ctx, r.APIReader, obj.Namespace, ref.Name); err != nil {
			return remote{}, err
		}
	}
	rm, err := remoteFor(u, data)
	if err != nil && obj.Spec.SecretRef != nil {
		return remote{}, fmt.Errorf("secret %s: %w", obj.Spec.SecretRef.Name, err)
	}
	return rm, err
}
