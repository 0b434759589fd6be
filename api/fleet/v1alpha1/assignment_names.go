package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// assignmentPrefixes are the short kind names that start Assignment names. They are
// part of the protocol: dependsOn names other Assignments by them, so they never change.
var assignmentPrefixes = map[string]string{
	"Kustomization": "ks",
	"HelmRelease":   "hr",
	"AgentRollout":  "ar",
}

// AssignmentPrefix is the prefix of the Assignments of a deployment kind; a kind
// without a short name uses its lower-case name.
func AssignmentPrefix(kind string) string {
	if p, ok := assignmentPrefixes[kind]; ok {
		return p
	}
	return strings.ToLower(kind)
}

// maxName is the longest object name the API server accepts.
const maxName = 253

// AssignmentName is the name of a deployment's Assignment in each cluster namespace:
// <prefix>.<namespace>.<name> (<prefix>.<name> for a cluster-scoped owner, a Tenant),
// shortened with a hash when longer than a name may be.
func AssignmentName(kind, namespace, name string) string {
	n := AssignmentPrefix(kind) + "." + namespace + "." + name
	if namespace == "" {
		n = AssignmentPrefix(kind) + "." + name
	}
	if len(n) <= maxName {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	h := hex.EncodeToString(sum[:8])
	return n[:maxName-1-len(h)] + "." + h
}

// OwnerLabels are the labels that find a deployment's Assignments in every cluster
// namespace.
func OwnerLabels(kind, namespace, name string) map[string]string {
	return map[string]string{
		OwnerKindLabel:      kind,
		OwnerNamespaceLabel: namespace,
		OwnerNameLabel:      name,
	}
}
