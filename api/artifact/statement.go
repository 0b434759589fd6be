package artifact

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

// StatementDomain starts every signed apply statement, so that a signature made for
// one can never be taken for a signature of anything else the hub's keys sign (trust
// bundles, or a bare digest in older versions).
const StatementDomain = "flotilla.dev/assignment-statement/v1\n"

// statement is everything an agent acts on, bound together: where the Assignment is
// (cluster, namespace, name) and its whole spec (digest, URL, owner, tenant, identity,
// target namespace, prune, substitution, decryption, dependencies…), with the
// signature itself left out.
type statement struct {
	Cluster   string                 `json:"cluster"`
	Namespace string                 `json:"namespace"`
	Name      string                 `json:"name"`
	Spec      fleetv1.AssignmentSpec `json:"spec"`
}

// Statement returns the bytes the hub signs for Assignment a on cluster: the domain
// line, then the statement as JSON. Go's JSON encoding of a struct is stable (fields
// in declaration order, map keys sorted), so the agent rebuilds the same bytes from
// the Assignment it reads.
func Statement(cluster string, a *fleetv1.Assignment) ([]byte, error) {
	st := statement{Cluster: cluster, Namespace: a.Namespace, Name: a.Name, Spec: *a.Spec.DeepCopy()}
	st.Spec.Artifact.Signature = ""
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return append([]byte(StatementDomain), b...), nil
}

// SignStatement signs a's apply statement for cluster.
func SignStatement(key ed25519.PrivateKey, cluster string, a *fleetv1.Assignment) (string, error) {
	msg, err := Statement(cluster, a)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg)), nil
}

// VerifyStatement checks that a.Spec.Artifact.Signature is a trusted key's signature
// of a's statement for cluster. An Assignment edited on the hub, copied to another
// cluster's namespace or renamed fails it.
func VerifyStatement(cluster string, a *fleetv1.Assignment, trusted []ed25519.PublicKey) error {
	if len(trusted) == 0 {
		return fmt.Errorf("%w: no trusted keys configured", ErrSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(a.Spec.Artifact.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is not base64 ed25519", ErrSignature)
	}
	msg, err := Statement(cluster, a)
	if err != nil {
		return err
	}
	for _, k := range trusted {
		if ed25519.Verify(k, msg, sig) {
			return nil
		}
	}
	return fmt.Errorf("%w: the Assignment's apply statement (cluster %s, %s/%s, digest %s) is not what the hub signed", ErrSignature, cluster, a.Namespace, a.Name, a.Spec.Artifact.Digest)
}
