// Package kustomize owns the Kustomization controller on the hub: it admits a
// Kustomization by the tenancy rules, builds its source path with kustomize (no
// network, bounded in time and size) into one artifact, and hands it to the deployment
// engine (hub/delivery/engine), which signs and assigns it to the targeted clusters
// and rolls their reports up into the Kustomization's status.
package kustomize
