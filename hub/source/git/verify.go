package git

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Verification modes of spec.verify.mode.
const (
	VerifyHEAD = "HEAD"
	VerifyTag  = "Tag"
)

// errNotVerified: the signature is missing or no trusted key made it. A new commit
// or a new key in the Secret may fix it, so the next interval looks again.
var errNotVerified = errors.New("signature verification failed")

// keyRing is the armored OpenPGP public keys of the verification Secret, one per
// Secret key: an armored block holds one key ring, so each value is tried on its own.
type keyRing struct {
	names  []string
	armors []string
}

// newKeyRing takes every value of the Secret; values that are not armored public
// keys are an error, so that a typo does not silently shrink the trusted set.
func newKeyRing(data map[string][]byte) (keyRing, error) {
	var kr keyRing
	for name := range data {
		kr.names = append(kr.names, name)
	}
	sort.Strings(kr.names)
	for _, name := range kr.names {
		armored := string(data[name])
		if _, err := openpgp.ReadArmoredKeyRing(strings.NewReader(armored)); err != nil {
			return keyRing{}, fmt.Errorf("secret key %s is not an armored OpenPGP public key: %w", name, err)
		}
		kr.armors = append(kr.armors, armored)
	}
	if len(kr.armors) == 0 {
		return keyRing{}, errors.New("the verification secret holds no keys")
	}
	return kr, nil
}

// verifySignature tries each key ring until one verifies; it returns a description
// of the signer.
func (kr keyRing) verifySignature(what string, verify func(armoredKeyRing string) (*openpgp.Entity, error)) (string, error) {
	var last error
	for _, armored := range kr.armors {
		e, err := verify(armored)
		if err == nil {
			return signer(e), nil
		}
		last = err
	}
	return "", fmt.Errorf("%w: %s is not signed by any key in the verification secret (%v)", errNotVerified, what, last)
}

// verifyCheckout checks the OpenPGP signature of the HEAD commit (mode HEAD) or of
// the annotated tag (mode Tag) of the clone in dir.
func verifyCheckout(dir, mode, tag string, kr keyRing) (string, error) {
	repo, err := gogit.PlainOpen(dir)
	if err != nil {
		return "", err
	}
	switch mode {
	case VerifyTag:
		refName := plumbing.NewTagReferenceName(tag)
		if full := plumbing.ReferenceName(tag); full.IsTag() {
			// spec.ref.name refs/tags/…: fetched under a name of its own, the tag
			// object unpeeled (checkoutRefName).
			refName, tag = checkoutRef, full.Short()
		}
		ref, err := repo.Reference(refName, false)
		if err != nil {
			return "", fmt.Errorf("reading tag %s: %w", tag, err)
		}
		t, err := repo.TagObject(ref.Hash())
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return "", fmt.Errorf("%w: tag %s is a lightweight tag and carries no signature", errNotVerified, tag)
		}
		if err != nil {
			return "", fmt.Errorf("reading tag %s: %w", tag, err)
		}
		if t.PGPSignature == "" {
			return "", fmt.Errorf("%w: tag %s is not signed", errNotVerified, tag)
		}
		return kr.verifySignature("tag "+tag, t.Verify)
	default:
		head, err := repo.Head()
		if err != nil {
			return "", fmt.Errorf("reading HEAD: %w", err)
		}
		c, err := repo.CommitObject(head.Hash())
		if err != nil {
			return "", fmt.Errorf("reading commit %s: %w", head.Hash(), err)
		}
		return verifyCommit(c, kr)
	}
}

func verifyCommit(c *object.Commit, kr keyRing) (string, error) {
	if c.PGPSignature == "" {
		return "", fmt.Errorf("%w: commit %s is not signed", errNotVerified, c.Hash)
	}
	return kr.verifySignature("commit "+c.Hash.String(), c.Verify)
}

// signer names a key by its first identity and fingerprint.
func signer(e *openpgp.Entity) string {
	if e == nil || e.PrimaryKey == nil {
		return "unknown key"
	}
	fp := strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint))
	names := make([]string, 0, len(e.Identities))
	for name := range e.Identities {
		names = append(names, name)
	}
	if len(names) == 0 {
		return fp
	}
	sort.Strings(names) // map order would make the message flap
	return fmt.Sprintf("%s (%s)", names[0], fp)
}
