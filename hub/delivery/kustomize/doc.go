// Package kustomize owns the Kustomization controller on the hub: it builds a source
// path with kustomize into one signed artifact and hands it to the deployment engine
// (hub/delivery/engine), which assigns it to the targeted clusters and rolls their
// reports up into the Kustomization's status.
package kustomize
