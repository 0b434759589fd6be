// Package helmrepo is a real Helm chart repository for tests: charts packaged with
// Helm's own chartutil, an index.yaml made by Helm's repo.IndexDirectory, served
// over HTTP (optionally behind basic auth).
package helmrepo
