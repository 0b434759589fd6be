package gitserver

import (
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// WriteSigned is Write with the commit signed by entity's OpenPGP key. go-git makes
// the commit, so no gpg program or agent is needed; git pushes it as usual.
func (r *Repo) WriteSigned(files map[string]string, entity *openpgp.Entity) string {
	r.s.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	_, wt := r.open()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.s.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.s.t.Fatal(err)
		}
	}
	if err := wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		r.s.t.Fatal(err)
	}
	h, err := wt.Commit("signed write", &gogit.CommitOptions{
		Author: signature(), SignKey: entity, AllowEmptyCommits: true,
	})
	if err != nil {
		r.s.t.Fatal(err)
	}
	r.git(r.work, "push", "--quiet", "origin", "HEAD:refs/heads/"+DefaultBranch)
	return h.String()
}

// TagSigned puts an annotated tag signed by entity (unsigned when entity is nil) on
// the latest commit and pushes it.
func (r *Repo) TagSigned(name string, entity *openpgp.Entity) {
	r.s.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	repo, _ := r.open()
	head, err := repo.Head()
	if err != nil {
		r.s.t.Fatal(err)
	}
	if _, err := repo.CreateTag(name, head.Hash(), &gogit.CreateTagOptions{
		Tagger: signature(), Message: "release " + name, SignKey: entity,
	}); err != nil {
		r.s.t.Fatal(err)
	}
	r.git(r.work, "push", "--quiet", "origin", "refs/tags/"+name)
}

func (r *Repo) open() (*gogit.Repository, *gogit.Worktree) {
	repo, err := gogit.PlainOpen(r.work)
	if err != nil {
		r.s.t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		r.s.t.Fatal(err)
	}
	return repo, wt
}

// signature is the same identity isolatedEnv gives the git command.
func signature() *object.Signature {
	return &object.Signature{Name: "Flotilla Test", Email: "test@flotilla.invalid", When: time.Now()}
}
