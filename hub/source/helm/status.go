package helm

import (
	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// markArtifactInStorage says whether the index in status can be downloaded; an OCI
// repository has none and no such condition.
func markArtifactInStorage(obj *sourcev1.HelmRepository, store *storage.Store) {
	if obj.Spec.Type == TypeOCI {
		conditions.Remove(obj, meta.ArtifactInStorageCondition)
		return
	}
	a := obj.Status.Artifact
	outcome.MarkArtifactInStorage(obj, a, a != nil && store.Has(a.Digest), "index")
}
