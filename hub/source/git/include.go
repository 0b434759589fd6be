package git

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

// includeIndex indexes GitRepositories by the names their spec.include lists, so
// that a new artifact of one finds the repositories that include it.
const includeIndex = "spec.include.repository.name"

// maxIncludeDepth bounds the walk that looks for include cycles.
const maxIncludeDepth = 32

// maxIncludedSize bounds what one included artifact may unpack to, as the OCI pull does.
const maxIncludedSize = 256 << 20

// includedNames is the index function: the names spec.include lists.
func includedNames(o client.Object) []string {
	gr, ok := o.(*sourcev1.GitRepository)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(gr.Spec.Include))
	for _, inc := range gr.Spec.Include {
		out = append(out, inc.Repository.Name)
	}
	return out
}

// include copies the artifacts of obj.Spec.Include into files (this repository's
// own), in order, and returns the artifacts it used. Every included repository is
// read in obj's namespace: the reference has no namespace field, so a tenant can
// include only its own sources.
func (r *Reconciler) include(ctx context.Context, obj *sourcev1.GitRepository, files map[string][]byte) ([]meta.Artifact, error) {
	if len(obj.Spec.Include) == 0 {
		return nil, nil
	}
	if err := r.checkIncludeCycle(ctx, obj); err != nil {
		return nil, err
	}
	used := make([]meta.Artifact, 0, len(obj.Spec.Include))
	for _, inc := range obj.Spec.Include {
		from, to, err := includePaths(inc)
		if err != nil {
			return nil, outcome.Fail(outcome.Stalled, sourcev1.InvalidIncludeReason, err)
		}
		name := inc.Repository.Name
		var src sourcev1.GitRepository
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: name}, &src); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, outcome.Fail(outcome.Waiting, sourcev1.IncludeUnavailableReason,
					fmt.Errorf("included GitRepository %s not found in namespace %s", name, obj.Namespace))
			}
			return nil, err
		}
		a := src.Status.Artifact
		if a == nil {
			return nil, outcome.Fail(outcome.Waiting, sourcev1.IncludeUnavailableReason,
				fmt.Errorf("included GitRepository %s has no artifact yet", name))
		}
		data, err := r.Store.Get(a.Digest)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, outcome.Fail(outcome.Waiting, sourcev1.IncludeUnavailableReason,
					fmt.Errorf("artifact %s of included GitRepository %s is not in storage", a.Revision, name))
			}
			return nil, outcome.Fail(outcome.Transient, meta.StorageOperationFailedReason, err)
		}
		included, err := artifact.Unpack(strings.NewReader(string(data)), maxIncludedSize)
		if err != nil {
			return nil, outcome.Fail(outcome.Transient, meta.StorageOperationFailedReason,
				fmt.Errorf("artifact of included GitRepository %s: %w", name, err))
		}
		if n := copyTree(files, included, from, to); n == 0 && from != "" {
			return nil, outcome.Fail(outcome.Waiting, sourcev1.IncludeUnavailableReason,
				fmt.Errorf("included GitRepository %s (revision %s) has no files below fromPath %s", name, a.Revision, from))
		}
		used = append(used, *a.DeepCopy())
	}
	return used, nil
}

// includePaths cleans fromPath and toPath: relative, inside the artifact. toPath
// defaults to the included repository's name; fromPath "" is the whole artifact.
func includePaths(inc sourcev1.GitRepositoryInclude) (from, to string, err error) {
	clean := func(field, p string) (string, error) {
		for _, part := range strings.Split(p, "/") {
			if part == ".." {
				return "", fmt.Errorf("spec.include %s: %s %q leaves the artifact", inc.Repository.Name, field, p)
			}
		}
		return strings.TrimPrefix(path.Clean("/"+p), "/"), nil
	}
	if from, err = clean("fromPath", inc.FromPath); err != nil {
		return "", "", err
	}
	to = inc.ToPath
	if to == "" {
		to = inc.Repository.Name
	}
	if to, err = clean("toPath", to); err != nil {
		return "", "", err
	}
	if to == "" {
		return "", "", fmt.Errorf("spec.include %s: toPath %q is the artifact's root, which would replace the repository's own files", inc.Repository.Name, inc.ToPath)
	}
	return from, to, nil
}

// copyTree replaces everything below to in dst with the files below from in src,
// and returns how many it copied.
func copyTree(dst, src map[string][]byte, from, to string) int {
	for name := range dst {
		if name == to || strings.HasPrefix(name, to+"/") {
			delete(dst, name)
		}
	}
	n := 0
	for name, data := range src {
		rel := name
		if from != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(name, from+"/"); !ok {
				continue
			}
		}
		dst[to+"/"+rel] = data
		n++
	}
	return n
}

// checkIncludeCycle follows spec.include from obj and refuses a chain that comes back
// to obj: neither repository could ever be built.
func (r *Reconciler) checkIncludeCycle(ctx context.Context, obj *sourcev1.GitRepository) error {
	type step struct {
		name  string
		chain []string
	}
	seen := map[string]bool{}
	queue := []step{}
	for _, inc := range obj.Spec.Include {
		queue = append(queue, step{inc.Repository.Name, []string{obj.Name, inc.Repository.Name}})
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s.name == obj.Name {
			return outcome.Fail(outcome.Stalled, sourcev1.InvalidIncludeReason,
				fmt.Errorf("spec.include makes a cycle: %s", strings.Join(s.chain, " → ")))
		}
		if seen[s.name] || len(s.chain) > maxIncludeDepth {
			continue
		}
		seen[s.name] = true
		var gr sourcev1.GitRepository
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: s.name}, &gr); err != nil {
			if apierrors.IsNotFound(err) {
				continue // reported when it is included
			}
			return err
		}
		for _, inc := range gr.Spec.Include {
			queue = append(queue, step{inc.Repository.Name, append(append([]string{}, s.chain...), inc.Repository.Name)})
		}
	}
	return nil
}
