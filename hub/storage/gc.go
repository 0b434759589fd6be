package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Stored is one artifact file in the store.
type Stored struct {
	Digest  string
	Size    int64
	ModTime time.Time
}

// List returns the artifacts in the store. ModTime is when the artifact was last
// stored: Put refreshes it for bytes already there.
func (s *Store) List() ([]Stored, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "sha256"))
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	var out []Stored
	for _, e := range entries {
		hex, ok := strings.CutSuffix(e.Name(), ext)
		if !ok || !e.Type().IsRegular() || !ValidDigest("sha256:"+hex) {
			continue // temporary files and anything else are not artifacts
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("storage: %w", err)
		}
		out = append(out, Stored{Digest: "sha256:" + hex, Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return out, nil
}

// Unreferenced picks the artifacts to delete: those not in keep and stored before
// cutoff. The cutoff protects an artifact a controller has just stored and not yet
// written into a status.
func Unreferenced(stored []Stored, keep map[string]bool, cutoff time.Time) []Stored {
	var out []Stored
	for _, a := range stored {
		if !keep[a.Digest] && a.ModTime.Before(cutoff) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out
}

// historyFile, in the store's folder, remembers the last revisions of each source
// and deployment, so that a rollback finds its artifact still there.
const historyFile = "history.json"

// History is, per owner (e.g. "GitRepository/default/app"), the digests of its
// last artifacts, newest first.
type History map[string][]string

// LoadHistory reads the history kept in the store; a missing file is an empty history.
func (s *Store) LoadHistory() (History, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, historyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return History{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	h := History{}
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("storage: %s: %w", historyFile, err)
	}
	return h, nil
}

// SaveHistory writes the history through a temporary file.
func (s *Store) SaveHistory(h History) error {
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-history-*")
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("storage: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return os.Rename(tmp.Name(), filepath.Join(s.dir, historyFile))
}

// Record makes digest the newest artifact of owner, keeping at most n.
func (h History) Record(owner, digest string, n int) {
	prev := h[owner]
	out := []string{digest}
	for _, d := range prev {
		if d != digest && len(out) < n {
			out = append(out, d)
		}
	}
	h[owner] = out[:min(len(out), max(n, 1))]
}

// Forget drops the owners not in live: once a source or deployment is deleted, its
// old artifacts are no longer worth keeping.
func (h History) Forget(live map[string]bool) {
	for owner := range h {
		if !live[owner] {
			delete(h, owner)
		}
	}
}

// Digests are all the digests the history keeps.
func (h History) Digests() map[string]bool {
	out := map[string]bool{}
	for _, ds := range h {
		for _, d := range ds {
			out[d] = true
		}
	}
	return out
}
