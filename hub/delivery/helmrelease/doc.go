// Package helmrelease is the HelmRelease controller on the hub: it admits a
// HelmRelease by the tenancy rules, resolves its chart (from a HelmRepository, or a
// folder of a Git or OCI source), merges its values, renders the chart once to refuse
// bad charts and values before any spoke sees them, packages chart and values into
// one artifact, and hands it to the deployment engine with the Helm settings every
// targeted cluster's agent runs.
package helmrelease
