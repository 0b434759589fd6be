// Package helm is the HelmRepository controller: for a default (HTTP) repository it
// downloads index.yaml, checks that it parses, and stores it as an artifact; for an
// oci repository it checks the URL, since charts are pulled from it one by one.
// ChartFetcher fetches one chart version from either kind for the HelmRelease
// controller: by the stored index, or by the tags of <url>/<chart>.
package helm
