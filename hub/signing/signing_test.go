package signing

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
)

const ns = "flotilla-system"

func newClient(objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(objs...).Build()
}

func TestLoadCreatesThenRotateAndRetire(t *testing.T) {
	ctx := context.Background()
	c := newClient()
	st, err := Load(ctx, c, ns)
	if err != nil {
		t.Fatal(err)
	}
	first := st.Active
	if len(st.Keys) != 1 || st.Sequence != 1 {
		t.Fatalf("first start: %d keys, sequence %d", len(st.Keys), st.Sequence)
	}
	again, err := Load(ctx, c, ns)
	if err != nil || again.Active != first || again.Sequence != 1 {
		t.Fatalf("second start changed the keys: %v %+v", err, again)
	}

	second, err := Rotate(ctx, c, ns)
	if err != nil {
		t.Fatal(err)
	}
	st, _ = Read(ctx, c, ns)
	if st.Active != second || len(st.Keys) != 2 || st.Sequence != 2 {
		t.Fatalf("after rotate: active %s (want %s), %d keys, sequence %d", st.Active, second, len(st.Keys), st.Sequence)
	}
	if err := Retire(ctx, c, ns, second); !errors.Is(err, ErrActiveKey) {
		t.Fatalf("retiring the active key: %v", err)
	}
	if err := Retire(ctx, c, ns, "0123456789abcdef"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("retiring an unknown key: %v", err)
	}
	if err := Retire(ctx, c, ns, first); err != nil {
		t.Fatal(err)
	}
	st, _ = Read(ctx, c, ns)
	if _, ok := st.Keys[first]; ok || len(st.Keys) != 1 || st.Sequence != 3 {
		t.Fatalf("after retire: keys %v, sequence %d", st.IDs(), st.Sequence)
	}
	var s corev1.Secret
	_ = c.Get(ctx, client.ObjectKey{Namespace: ns, Name: SecretName}, &s)
	if _, ok := s.Data[keyName(first)]; ok {
		t.Fatal("retired key still in the Secret")
	}
}

func TestLoadMigratesLegacySecretAndBumpsHandEdits(t *testing.T) {
	ctx := context.Background()
	key, _ := artifact.GenerateKey()
	pemKey, _ := artifact.MarshalPrivateKey(key)
	c := newClient(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: SecretName},
		Data: map[string][]byte{legacyKey: pemKey}})
	st, err := Load(ctx, c, ns)
	if err != nil {
		t.Fatal(err)
	}
	id := artifact.KeyID(key.Public().(ed25519.PublicKey))
	if st.Active != id || st.Sequence != 1 {
		t.Fatalf("legacy key: active %s want %s, sequence %d", st.Active, id, st.Sequence)
	}
	var s corev1.Secret
	_ = c.Get(ctx, client.ObjectKey{Namespace: ns, Name: SecretName}, &s)
	if _, ok := s.Data[legacyKey]; ok || s.Data[keyName(id)] == nil {
		t.Fatalf("legacy key not moved: %v", keysOf(s.Data))
	}

	// A key added by hand, without touching the sequence: the next load counts it.
	extra, _ := artifact.GenerateKey()
	extraPEM, _ := artifact.MarshalPrivateKey(extra)
	s.Data[keyName(artifact.KeyID(extra.Public().(ed25519.PublicKey)))] = extraPEM
	if err := c.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	st, err = Load(ctx, c, ns)
	if err != nil || st.Sequence != 2 || len(st.Keys) != 2 || st.Active != id {
		t.Fatalf("hand edit: %v, sequence %d, %d keys, active %s", err, st.Sequence, len(st.Keys), st.Active)
	}
}

func TestParseSecretRefusesMisfiledKey(t *testing.T) {
	key, _ := artifact.GenerateKey()
	pemKey, _ := artifact.MarshalPrivateKey(key)
	_, err := ParseSecret(&corev1.Secret{Data: map[string][]byte{"0000000000000000.pem": pemKey}})
	if err == nil {
		t.Fatal("a key filed under another key's ID was accepted")
	}
}

func TestTrustDataIsSignedByEveryKeyAndStable(t *testing.T) {
	ctx := context.Background()
	c := newClient()
	if _, err := Load(ctx, c, ns); err != nil {
		t.Fatal(err)
	}
	old, _ := Read(ctx, c, ns)
	if _, err := Rotate(ctx, c, ns); err != nil {
		t.Fatal(err)
	}
	st, _ := Read(ctx, c, ns)
	k := NewKeyring(st)
	data, err := k.TrustData()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := k.TrustData()
	if data[artifact.TrustBundleKey] != again[artifact.TrustBundleKey] || data[artifact.TrustSignaturesKey] != again[artifact.TrustSignaturesKey] {
		t.Fatal("publishing twice gave different bundles")
	}
	// An agent that knows only the old key accepts the bundle that brings the new one.
	oldPub := old.Keys[old.Active].Public().(ed25519.PublicKey)
	b, by, err := artifact.VerifyTrustBundle([]byte(data[artifact.TrustBundleKey]), []byte(data[artifact.TrustSignaturesKey]), []ed25519.PublicKey{oldPub})
	if err != nil || by != old.Active || b.Active != st.Active || len(b.Keys) != 2 || b.Sequence != st.Sequence {
		t.Fatalf("old key's agent: %v by %s, bundle %+v", err, by, b)
	}
	// The signing key is the active one.
	a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: "flotilla-cluster-a", Name: "x"}}
	sig, err := k.SignStatement("a", a)
	if err != nil {
		t.Fatal(err)
	}
	a.Spec.Artifact.Signature = sig
	if artifact.VerifyStatement("a", a, []ed25519.PublicKey{oldPub}) == nil {
		t.Fatal("signed with the old key after rotation")
	}
	if err := artifact.VerifyStatement("a", a, k.PublicKeys()[:1]); err != nil {
		t.Fatalf("PublicKeys()[0] is not the active key: %v", err)
	}
}

func TestSignedOnlyBy(t *testing.T) {
	ctx := context.Background()
	c := newClient()
	st, _ := Load(ctx, c, ns)
	first := st.Active
	d := "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	old := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: "flotilla-cluster-a", Name: "old", Labels: map[string]string{fleetv1.ClusterLabel: "a"}},
		Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: d}}}
	old.Spec.Artifact.Signature, _ = artifact.SignStatement(st.Keys[first], "a", old)
	if err := c.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	second, _ := Rotate(ctx, c, ns)
	st, _ = Read(ctx, c, ns)
	fresh := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: "flotilla-cluster-a", Name: "new", Labels: map[string]string{fleetv1.ClusterLabel: "a"}},
		Spec: fleetv1.AssignmentSpec{Artifact: fleetv1.SignedArtifact{Digest: d}}}
	fresh.Spec.Artifact.Signature, _ = artifact.SignStatement(st.Keys[second], "a", fresh)
	if err := c.Create(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	only, err := SignedOnlyBy(ctx, c, st, first)
	if err != nil || len(only) != 1 || only[0] != "flotilla-cluster-a/old" {
		t.Fatalf("signed only by the first key: %v %v", only, err)
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
