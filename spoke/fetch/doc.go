// Package fetch owns getting an Assignment's artifact onto the spoke: download with
// bounded retries, digest and signature checks, and the on-disk cache of verified
// artifacts.
package fetch
