package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxReleaseNameLength is Helm's limit on a release name.
const MaxReleaseNameLength = 53

// shortenReleaseName keeps a name of at most 53 characters as it is; a longer one
// becomes its first 40 characters, a dash and 12 hex characters of its sha256.
func shortenReleaseName(name string) string {
	if len(name) <= MaxReleaseNameLength {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return strings.TrimRight(name[:40], "-.") + "-" + hex.EncodeToString(sum[:])[:12]
}
