// Package artifact owns the artifact format shared by hub and spoke: deterministic
// tar.gz packing, sha256 digests, ed25519 signatures over the digest, and unpacking
// that refuses any entry escaping its folder.
package artifact
