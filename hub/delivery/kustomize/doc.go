// Package kustomize owns the Kustomization controller on the hub: it builds a source
// path with kustomize into one signed artifact, hands it to every targeted cluster as
// an Assignment, and rolls the clusters' reports up into the Kustomization's status.
package kustomize
