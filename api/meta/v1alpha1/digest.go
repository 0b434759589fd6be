package v1alpha1

import "regexp"

// DigestPattern is the only digest form Flotilla accepts: the sha256 of an artifact
// file, in lower-case hex. The CRDs enforce it with the same expression; hub and agent
// check it again because a digest becomes a file name on both sides.
const DigestPattern = `^sha256:[a-f0-9]{64}$`

var digestRE = regexp.MustCompile(DigestPattern)

// ValidDigest reports whether d has the form DigestPattern describes.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }
