// Package charts makes real Helm charts for tests: as files (what a Git or OCI source
// holds, or what the hub packs into an artifact), as a chart object, or as the .tgz
// that `helm package` writes. The charts are built with Helm's own chart types and
// chartutil.Save, so what the tests release is what Helm users release.
package charts
