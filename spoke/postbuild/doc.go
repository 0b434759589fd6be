// Package postbuild owns post-build variable substitution on the spoke: it expands
// ${var}, ${var:=default} and ${var:-default} in the manifests of an artifact, with
// variables from the Assignment's spec.postBuild and from ConfigMaps and Secrets on
// the spoke, so that one artifact built by the hub serves every cluster.
package postbuild
