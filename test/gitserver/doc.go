// Package gitserver owns the Git server that tests fetch from: real bare repositories
// served over smart HTTP by git http-backend, with optional basic auth.
package gitserver
