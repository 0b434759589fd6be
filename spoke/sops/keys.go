package sops

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	sopsage "github.com/getsops/sops/v3/age"
)

// Key file suffixes in the decryption Secret, as in Flux.
const (
	AgeKeySuffix = ".agekey"
	PGPKeySuffix = ".asc"
)

// Keys are the private keys one deployment may decrypt with.
type Keys struct {
	age      sopsage.ParsedIdentities
	pgp      openpgp.EntityList
	services ServiceCredentials
}

// ParseKeys reads the entries of a decryption Secret: those named *.agekey hold age
// identities (one per line, # comments allowed), those named *.asc armored OpenPGP
// private keys, and sops.vault-token, sops.aws-kms, sops.azure-kv and sops.gcp-kms
// credentials of key services (see services.go). Other entries are ignored. An entry that does not parse is an error
// naming it, so a broken key is not mistaken for a wrong one.
func ParseKeys(data map[string][]byte) (*Keys, error) {
	names := make([]string, 0, len(data))
	for name := range data {
		names = append(names, name)
	}
	sort.Strings(names)
	k := &Keys{}
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, AgeKeySuffix):
			if err := k.age.Import(string(data[name])); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		case strings.HasSuffix(name, PGPKeySuffix):
			ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data[name]))
			if err != nil {
				return nil, fmt.Errorf("%s: not an armored OpenPGP key: %w", name, err)
			}
			for _, e := range ring {
				if e.PrivateKey == nil {
					return nil, fmt.Errorf("%s: OpenPGP key %X has no private key", name, e.PrimaryKey.Fingerprint)
				}
			}
			k.pgp = append(k.pgp, ring...)
		default:
			if _, err := k.services.parse(name, data[name]); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return k, nil
}

// Empty reports whether there is no key and no key service credential at all.
func (k *Keys) Empty() bool {
	return k == nil || (len(k.age) == 0 && len(k.pgp) == 0 && k.services.empty())
}

// AgeIdentities adds age identities, for callers that hold them already parsed.
func (k *Keys) AgeIdentities(ids ...age.Identity) { k.age = append(k.age, ids...) }
