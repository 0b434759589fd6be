package git

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/source/versions"
)

// remote says where to fetch from and how to authenticate.
type remote struct {
	URL      string
	Auth     transport.AuthMethod
	CABundle []byte
	// Proxy, for an ssh:// URL of a tenant, makes go-git dial through the
	// restricted dialer (egress.SSHProxyURL); empty otherwise.
	Proxy transport.ProxyOptions
}

// errNoMatchingTag is returned when no tag satisfies a semver range; a later tag may.
var errNoMatchingTag = errors.New("no tag matches the semver range")

// checkout fetches ref into dir (which must be empty) and returns the revision it
// checked out: <branch>@sha1:<hex>, <tag>@sha1:<hex>, <ref name>@sha1:<hex>, or
// sha1:<hex> for a lone commit. When the ref sets several, the first of commit,
// name, semver, tag and branch wins, as in Flux.
func checkout(ctx context.Context, dir string, rm remote, ref *sourcev1.GitRepositoryRef) (string, error) {
	if ref == nil {
		ref = &sourcev1.GitRepositoryRef{}
	}
	opts := &gogit.CloneOptions{
		URL:          rm.URL,
		Auth:         rm.Auth,
		CABundle:     rm.CABundle,
		ProxyOptions: rm.Proxy,
		RemoteName:   gogit.DefaultRemoteName,
		Tags:         gogit.NoTags,
	}
	switch {
	case ref.Commit != "":
		return checkoutCommit(ctx, dir, opts, ref.Branch, ref.Commit)
	case ref.Name != "":
		return checkoutRefName(ctx, dir, rm, ref.Name)
	case ref.SemVer != "":
		tag, err := newestTag(ctx, rm, ref.SemVer)
		if err != nil {
			return "", err
		}
		return checkoutTag(ctx, dir, opts, tag)
	case ref.Tag != "":
		return checkoutTag(ctx, dir, opts, ref.Tag)
	case ref.Branch != "":
		opts.ReferenceName = plumbing.NewBranchReferenceName(ref.Branch)
	default:
		opts.ReferenceName = plumbing.HEAD // the remote's default branch
	}
	opts.SingleBranch, opts.Depth = true, 1
	repo, err := gogit.PlainCloneContext(ctx, dir, false, opts)
	if err != nil {
		return "", fmt.Errorf("cloning %s: %w", describeRef(ref), err)
	}
	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("reading HEAD: %w", err)
	}
	if !head.Name().IsBranch() {
		// The remote did not say which branch its HEAD is.
		return "HEAD@sha1:" + head.Hash().String(), nil
	}
	return head.Name().Short() + "@sha1:" + head.Hash().String(), nil
}

func checkoutTag(ctx context.Context, dir string, opts *gogit.CloneOptions, tag string) (string, error) {
	opts.ReferenceName = plumbing.NewTagReferenceName(tag)
	opts.SingleBranch, opts.Depth = true, 1
	repo, err := gogit.PlainCloneContext(ctx, dir, false, opts)
	if err != nil {
		return "", fmt.Errorf("cloning tag %s: %w", tag, err)
	}
	// Cloning a tag leaves HEAD detached at the commit, annotated tags peeled.
	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("reading HEAD: %w", err)
	}
	return tag + "@sha1:" + head.Hash().String(), nil
}

// checkoutCommit needs history, not just the tip: the commit may be anywhere on the
// branch (or, without a branch, on any branch or tag).
func checkoutCommit(ctx context.Context, dir string, opts *gogit.CloneOptions, branch, commit string) (string, error) {
	opts.NoCheckout = true
	if branch != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(branch)
		opts.SingleBranch = true
	} else {
		opts.Tags = gogit.AllTags
	}
	repo, err := gogit.PlainCloneContext(ctx, dir, false, opts)
	if err != nil {
		if branch != "" {
			return "", fmt.Errorf("cloning branch %s: %w", branch, err)
		}
		return "", fmt.Errorf("cloning: %w", err)
	}
	h := plumbing.NewHash(commit)
	if _, err := repo.CommitObject(h); err != nil {
		if branch != "" {
			return "", fmt.Errorf("commit %s not found on branch %s: %w", commit, branch, err)
		}
		return "", fmt.Errorf("commit %s not found: %w", commit, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.Checkout(&gogit.CheckoutOptions{Hash: h, Force: true}); err != nil {
		return "", fmt.Errorf("checking out commit %s: %w", commit, err)
	}
	if branch != "" {
		return branch + "@sha1:" + commit, nil
	}
	return "sha1:" + commit, nil
}

// checkoutRef is where checkoutRefName fetches spec.ref.name to: a name of its own,
// so that no ref of the local repository is mistaken for it.
const checkoutRef = plumbing.ReferenceName("refs/flotilla/checkout")

// checkoutRefName fetches one full reference (refs/heads/…, refs/tags/…,
// refs/pull/<n>/head, …) at depth 1 and checks out the commit it points to, an
// annotated tag peeled. A plain clone cannot do it: go-git clones branches and tags
// only.
func checkoutRefName(ctx context.Context, dir string, rm remote, name string) (string, error) {
	refName := plumbing.ReferenceName(name)
	if err := refName.Validate(); err != nil {
		return "", outcome.Fail(outcome.Stalled, "", fmt.Errorf("spec.ref.name %q: %w", name, err))
	}
	repo, err := gogit.PlainInit(dir, false)
	if err != nil {
		return "", err
	}
	r, err := repo.CreateRemote(&config.RemoteConfig{Name: gogit.DefaultRemoteName, URLs: []string{rm.URL}})
	if err != nil {
		return "", err
	}
	local := checkoutRef
	err = r.FetchContext(ctx, &gogit.FetchOptions{
		RemoteName:   gogit.DefaultRemoteName,
		RefSpecs:     []config.RefSpec{config.RefSpec("+" + name + ":" + local.String())},
		Depth:        1,
		Auth:         rm.Auth,
		CABundle:     rm.CABundle,
		ProxyOptions: rm.Proxy,
		Tags:         gogit.NoTags,
	})
	if err != nil {
		if errors.Is(err, gogit.NoMatchingRefSpecError{}) || strings.Contains(err.Error(), "couldn't find remote ref") {
			return "", fmt.Errorf("fetching ref %s: the remote has no such reference", name)
		}
		return "", fmt.Errorf("fetching ref %s: %w", name, err)
	}
	ref, err := repo.Reference(local, true)
	if err != nil {
		return "", fmt.Errorf("fetching ref %s: %w", name, err)
	}
	h := ref.Hash()
	if tag, err := repo.TagObject(h); err == nil {
		c, err := tag.Commit()
		if err != nil {
			return "", fmt.Errorf("ref %s: tag %s does not point to a commit: %w", name, tag.Name, err)
		}
		h = c.Hash
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.Checkout(&gogit.CheckoutOptions{Hash: h, Force: true}); err != nil {
		return "", fmt.Errorf("checking out ref %s: %w", name, err)
	}
	return name + "@sha1:" + h.String(), nil
}

// newestTag lists the remote's tags and returns the highest version in the range.
func newestTag(ctx context.Context, rm remote, rng string) (string, error) {
	c, err := versions.Range(rng)
	if err != nil {
		return "", err
	}
	r := gogit.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: gogit.DefaultRemoteName, URLs: []string{rm.URL}})
	refs, err := r.ListContext(ctx, &gogit.ListOptions{Auth: rm.Auth, CABundle: rm.CABundle, ProxyOptions: rm.Proxy})
	if err != nil {
		return "", fmt.Errorf("listing tags: %w", err)
	}
	var names []string
	for _, ref := range refs {
		if ref.Name().IsTag() && !strings.HasSuffix(ref.Name().String(), "^{}") {
			names = append(names, ref.Name().Short())
		}
	}
	tag, ok := versions.Newest(names, c)
	if !ok {
		return "", fmt.Errorf("%w %q (%d tags)", errNoMatchingTag, rng, len(names))
	}
	return tag, nil
}

func describeRef(ref *sourcev1.GitRepositoryRef) string {
	if ref.Branch != "" {
		return "branch " + ref.Branch
	}
	return "default branch"
}
