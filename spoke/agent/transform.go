package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/tenancy"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/apply"
	"github.com/flotilla-dev/flotilla/spoke/postbuild"
	"github.com/flotilla-dev/flotilla/spoke/sops"
)

// transform is the one step between Parse and Apply that changes the manifests on
// the spoke: postBuild substitution (spoke/postbuild) and SOPS decryption
// (spoke/sops), as asg.Spec.PostBuild and asg.Spec.Decryption ask. It runs on every
// apply and drift check, so it must be deterministic for a given Assignment and
// spoke state.
//
// Both work on each object's document in the artifact rather than on the parsed
// object: SOPS' MAC covers values in document order, which a parsed object no longer
// has, and substitution keeps the quoting of the source ("${port}" stays a string).
// The artifact is already verified and cached by the fetcher, so reading it again
// costs no download. Substitution comes first and skips encrypted Secrets, whose MAC
// would break; decryption follows, as in Flux.
func (r *reconciler) transform(ctx context.Context, asg *fleetv1.Assignment, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	pb := asg.Spec.PostBuild
	encrypted := false
	for _, o := range objs {
		encrypted = encrypted || sops.IsEncrypted(o)
	}
	if pb == nil && !encrypted {
		return objs, nil
	}

	var vars map[string]string
	if pb != nil {
		// substituteFrom is read as the Assignment's identity, in its target namespace.
		c, err := r.spoke.clientFor(serviceAccountUser(asg))
		if err != nil {
			return nil, err
		}
		ns := asg.Spec.TargetNamespace
		if ns == "" {
			ns = "default"
		}
		if vars, err = postbuild.Variables(ctx, c, ns, pb); err != nil {
			return nil, fmt.Errorf("postBuild: %w", err)
		}
	}
	var keys *sops.Keys
	if encrypted {
		var err error
		if keys, err = r.decryptionKeys(ctx, asg); err != nil {
			return nil, err
		}
	}

	files, err := r.fetcher.Fetch(ctx, asg)
	if err != nil {
		return nil, err
	}
	t := &transformer{vars: vars, substitute: pb != nil, keys: keys, out: map[string]*unstructured.Unstructured{}}
	if err := t.documents(files); err != nil {
		return nil, err
	}

	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		if n, ok := t.out[apply.RefOf(o).ID()]; ok {
			out = append(out, n)
			continue
		}
		// Not found in the artifact's text (it should always be): fall back to the
		// parsed object, which substitutes but cannot be decrypted.
		if sops.IsEncrypted(o) {
			return nil, fmt.Errorf("Secret %s: cannot decrypt, its document was not found in the artifact", nsName(o))
		}
		o = o.DeepCopy()
		if pb != nil && !postbuild.Disabled(o) {
			if err := postbuild.SubstituteObject(o, vars, postbuild.Options{}); err != nil {
				return nil, fmt.Errorf("substituting variables in %s: %w", apply.RefOf(o), err)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// decryptionKeys reads the Assignment's decryption Secret, in the agent's own
// namespace (which tenants cannot write to, so keys never travel through the hub),
// with the agent's own identity: tenants name the Secret, but cannot read it.
func (r *reconciler) decryptionKeys(ctx context.Context, asg *fleetv1.Assignment) (*sops.Keys, error) {
	dec := asg.Spec.Decryption
	if dec == nil {
		return nil, errors.New("the manifests hold SOPS-encrypted Secrets but spec.decryption is not set")
	}
	if dec.SecretRef == nil {
		return nil, errors.New("the manifests hold SOPS-encrypted Secrets but spec.decryption.secretRef is not set")
	}
	key := types.NamespacedName{Namespace: r.namespace, Name: dec.SecretRef.Name}
	var s corev1.Secret
	if err := r.spoke.own.Get(ctx, key, &s); err != nil {
		return nil, fmt.Errorf("decryption keys: reading Secret %s on the spoke: %w", key, err)
	}
	if !tenancy.KeyServes(s.Annotations, asg.Spec.Tenant) {
		return nil, fmt.Errorf("decryption keys: Secret %s does not serve Tenant %s (annotation %s)", key, asg.Spec.Tenant, tenancyv1.DecryptionTenantsAnnotation)
	}
	keys, err := sops.ParseKeys(s.Data)
	if err != nil {
		return nil, fmt.Errorf("decryption keys in Secret %s: %w", key, err)
	}
	if keys.Empty() {
		return nil, fmt.Errorf("decryption Secret %s holds no *%s or *%s entry, nor %s, %s, %s or %s", key, sops.AgeKeySuffix, sops.PGPKeySuffix,
			sops.VaultTokenKey, sops.AWSKMSKey, sops.AzureKVKey, sops.GCPKMSKey)
	}
	return keys, nil
}

type transformer struct {
	vars       map[string]string
	substitute bool
	keys       *sops.Keys
	// out holds the transformed objects by the ID their source had.
	out map[string]*unstructured.Unstructured
}

// documents transforms every document of the artifact's manifest files, read as
// apply.Parse reads them.
func (t *transformer) documents(files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for name := range files {
		switch strings.ToLower(path.Ext(name)) {
		case ".yaml", ".yml", ".json":
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(files[name])))
		for {
			doc, err := rd.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := t.document(doc); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *transformer) document(doc []byte) error {
	orig, err := parseDocument(doc)
	if err != nil || len(orig) == 0 {
		return nil // apply.Parse accepted the artifact, so this is an empty document
	}
	if len(orig) > 1 {
		// A List: its items are handled one by one, as parsed objects.
		for _, o := range orig {
			if sops.IsEncrypted(o) {
				return fmt.Errorf("Secret %s: SOPS-encrypted Secrets inside a List are not supported", nsName(o))
			}
			if t.substitute && !postbuild.Disabled(o) {
				if err := postbuild.SubstituteObject(o, t.vars, postbuild.Options{}); err != nil {
					return fmt.Errorf("substituting variables in %s: %w", apply.RefOf(o), err)
				}
			}
			t.out[apply.RefOf(o).ID()] = o
		}
		return nil
	}

	o := orig[0]
	id := apply.RefOf(o).ID()
	switch {
	case sops.IsEncrypted(o):
		// Never substituted: that would change the values the MAC covers.
		plain, err := t.keys.DecryptYAML(doc)
		if err != nil {
			return fmt.Errorf("decrypting Secret %s: %w", nsName(o), err)
		}
		doc = plain
	case t.substitute && !postbuild.Disabled(o):
		out, err := postbuild.SubstituteYAML(doc, t.vars, postbuild.Options{})
		if err != nil {
			return fmt.Errorf("substituting variables in %s: %w", apply.RefOf(o), err)
		}
		doc = out
	default:
		t.out[id] = o
		return nil
	}
	objs, err := parseDocument(doc)
	if err != nil {
		return fmt.Errorf("%s after substitution: %w", apply.RefOf(o), err)
	}
	if len(objs) != 1 {
		return fmt.Errorf("%s: substitution turned one object into %d", apply.RefOf(o), len(objs))
	}
	t.out[id] = objs[0]
	return nil
}

// parseDocument parses one document with the rules of apply.Parse.
func parseDocument(doc []byte) ([]*unstructured.Unstructured, error) {
	return apply.Parse(map[string][]byte{"document.yaml": doc})
}

func nsName(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}
