package gc

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// Defaults for the zero values of Collector.
const (
	DefaultInterval    = 10 * time.Minute
	DefaultRevisions   = 3
	DefaultGracePeriod = 10 * time.Minute
)

// Store is the part of the artifact store the collector uses; the file store and
// the OCI store both are one.
type Store interface {
	List() ([]storage.Stored, error)
	Delete(digest string) error
	LoadHistory() (storage.History, error)
	SaveHistory(storage.History) error
}

// Collector deletes unreferenced artifacts from the store. It runs in the hub's
// manager (Start) and can be called directly (Collect).
type Collector struct {
	// Client lists the objects that reference artifacts.
	Client client.Reader
	Store  Store
	// Interval between collections.
	Interval time.Duration
	// Revisions is how many of the last artifacts of each source and deployment are
	// kept beyond the current one's, counting it.
	Revisions int
	// GracePeriod: an artifact stored more recently is never deleted, since the
	// controller that stored it may not have written its status yet.
	GracePeriod time.Duration
	Log         logr.Logger
}

// Result says what one collection did.
type Result struct {
	Kept    int
	Deleted []string
	Freed   int64
}

func (c *Collector) defaults() {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Revisions <= 0 {
		c.Revisions = DefaultRevisions
	}
	if c.GracePeriod <= 0 {
		c.GracePeriod = DefaultGracePeriod
	}
	if c.Log.GetSink() == nil {
		c.Log = logr.Discard()
	}
}

// NeedLeaderElection: one hub replica deleting is enough.
func (c *Collector) NeedLeaderElection() bool { return true }

// Start collects every Interval until ctx is done. A failed collection is logged and
// tried again next time; it never stops the hub.
func (c *Collector) Start(ctx context.Context) error {
	c.defaults()
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		res, err := c.Collect(ctx)
		if err != nil {
			c.Log.Error(err, "artifact garbage collection failed; nothing was deleted")
			continue
		}
		if len(res.Deleted) > 0 {
			c.Log.Info("artifacts collected", "deleted", len(res.Deleted), "freedBytes", res.Freed, "kept", res.Kept)
		}
	}
}

// Collect deletes what no one references now and what is not among the last
// Revisions artifacts of a live source or deployment. If any list fails, it deletes
// nothing: deciding on part of the picture could delete something still assigned.
func (c *Collector) Collect(ctx context.Context) (Result, error) {
	c.defaults()
	now := time.Now()
	current, assigned, err := c.references(ctx)
	if err != nil {
		return Result{}, err
	}
	hist, err := c.Store.LoadHistory()
	if err != nil {
		return Result{}, err
	}
	live := map[string]bool{}
	for owner, digest := range current {
		live[owner] = true
		hist.Record(owner, digest, c.Revisions)
	}
	hist.Forget(live)
	if err := c.Store.SaveHistory(hist); err != nil {
		return Result{}, err
	}
	keep := hist.Digests()
	for d := range assigned {
		keep[d] = true
	}
	stored, err := c.Store.List()
	if err != nil {
		return Result{}, err
	}
	res := Result{}
	for _, a := range storage.Unreferenced(stored, keep, now.Add(-c.GracePeriod)) {
		if err := c.Store.Delete(a.Digest); err != nil {
			return res, err
		}
		res.Deleted = append(res.Deleted, a.Digest)
		res.Freed += a.Size
		c.Log.V(1).Info("deleted artifact", "digest", a.Digest, "size", a.Size)
	}
	res.Kept = len(stored) - len(res.Deleted)
	return res, nil
}

// references returns the current artifact of each source and deployment (by
// "Kind/namespace/name"), and every digest an Assignment names, in its spec or as
// what its cluster runs.
func (c *Collector) references(ctx context.Context) (map[string]string, map[string]bool, error) {
	current := map[string]string{}
	add := func(kind string, o client.Object, a *meta.Artifact) {
		if a != nil && a.Digest != "" {
			current[kind+"/"+o.GetNamespace()+"/"+o.GetName()] = a.Digest
		}
	}
	var git sourcev1.GitRepositoryList
	if err := c.Client.List(ctx, &git); err != nil {
		return nil, nil, fmt.Errorf("listing GitRepositories: %w", err)
	}
	for i := range git.Items {
		add(sourcev1.GitRepositoryKind, &git.Items[i], git.Items[i].Status.Artifact)
	}
	var oci sourcev1.OCIRepositoryList
	if err := c.Client.List(ctx, &oci); err != nil {
		return nil, nil, fmt.Errorf("listing OCIRepositories: %w", err)
	}
	for i := range oci.Items {
		add(sourcev1.OCIRepositoryKind, &oci.Items[i], oci.Items[i].Status.Artifact)
	}
	var helm sourcev1.HelmRepositoryList
	if err := c.Client.List(ctx, &helm); err != nil {
		return nil, nil, fmt.Errorf("listing HelmRepositories: %w", err)
	}
	for i := range helm.Items {
		add(sourcev1.HelmRepositoryKind, &helm.Items[i], helm.Items[i].Status.Artifact)
	}
	for _, k := range owners.All() {
		list := k.NewList()
		if err := c.Client.List(ctx, list); err != nil {
			return nil, nil, fmt.Errorf("listing %ss: %w", k.Kind, err)
		}
		if err := apimeta.EachListItem(list, func(o runtime.Object) error {
			obj, ok := o.(client.Object)
			if !ok {
				return fmt.Errorf("%s list holds a %T", k.Kind, o)
			}
			add(k.Kind, obj, k.Artifact(obj))
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	var as fleetv1.AssignmentList
	if err := c.Client.List(ctx, &as); err != nil {
		return nil, nil, fmt.Errorf("listing Assignments: %w", err)
	}
	assigned := map[string]bool{}
	for _, a := range as.Items {
		assigned[a.Spec.Artifact.Digest] = true
		if a.Status.AppliedDigest != "" {
			assigned[a.Status.AppliedDigest] = true
		}
	}
	return current, assigned, nil
}
