package artifact

import (
	"crypto/ed25519"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

func signedAssignment(t testing.TB, key ed25519.PrivateKey) *fleetv1.Assignment {
	a := &fleetv1.Assignment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "flotilla-cluster-c1", Name: "ks.team-a.app"},
		Spec: fleetv1.AssignmentSpec{
			Owner:                   fleetv1.DeploymentReference{APIVersion: "delivery.flotilla.dev/v1alpha1", Kind: "Kustomization", Namespace: "team-a", Name: "app", UID: "u1"},
			Artifact:                fleetv1.SignedArtifact{URL: "https://hub:9443/artifacts/sha256:aa", Digest: "sha256:aa", Revision: "main@sha1:1"},
			Tenant:                  "team-a",
			ServiceAccountName:      "team-a",
			ServiceAccountNamespace: "app-a",
			TargetNamespace:         "app-a",
			Prune:                   true,
			ApplySettings:           meta.ApplySettings{PostBuild: &meta.PostBuild{Substitute: map[string]string{"cluster_name": "c1", "b": "2", "a": "1"}}},
			HealthCheckExprs:        []meta.CustomHealthCheck{{APIVersion: "example.com/v1", Kind: "Database", Current: "status.ready", Failed: "status.broken"}},
		},
	}
	sig, err := SignStatement(key, "c1", a)
	if err != nil {
		t.Fatal(err)
	}
	a.Spec.Artifact.Signature = sig
	return a
}

func TestStatement(t *testing.T) {
	key, _ := GenerateKey()
	other, _ := GenerateKey()
	trusted := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	if err := VerifyStatement("c1", signedAssignment(t, key), trusted); err != nil {
		t.Fatalf("untouched Assignment: %v", err)
	}
	for _, tc := range []struct {
		name    string
		cluster string
		edit    func(a *fleetv1.Assignment)
		keys    []ed25519.PublicKey
	}{
		{"another cluster", "c2", func(*fleetv1.Assignment) {}, nil},
		{"copied to another namespace", "c1", func(a *fleetv1.Assignment) { a.Namespace = "flotilla-cluster-c2" }, nil},
		{"renamed", "c1", func(a *fleetv1.Assignment) { a.Name = "ks.team-a.other" }, nil},
		{"service account", "c1", func(a *fleetv1.Assignment) { a.Spec.ServiceAccountName = "flotilla-agent" }, nil},
		{"service account namespace", "c1", func(a *fleetv1.Assignment) { a.Spec.ServiceAccountNamespace = "flotilla-system" }, nil},
		{"tenant cleared", "c1", func(a *fleetv1.Assignment) { a.Spec.Tenant = "" }, nil},
		{"target namespace", "c1", func(a *fleetv1.Assignment) { a.Spec.TargetNamespace = "kube-system" }, nil},
		{"url", "c1", func(a *fleetv1.Assignment) { a.Spec.Artifact.URL = "https://evil.example/a" }, nil},
		{"digest", "c1", func(a *fleetv1.Assignment) { a.Spec.Artifact.Digest = "sha256:bb" }, nil},
		{"prune", "c1", func(a *fleetv1.Assignment) { a.Spec.Prune = false }, nil},
		{"substitution", "c1", func(a *fleetv1.Assignment) { a.Spec.PostBuild.Substitute["a"] = "x" }, nil},
		{"decryption added", "c1", func(a *fleetv1.Assignment) { a.Spec.Decryption = &meta.Decryption{Provider: "sops"} }, nil},
		{"owner", "c1", func(a *fleetv1.Assignment) { a.Spec.Owner.Name = "other" }, nil},
		{"suspend set", "c1", func(a *fleetv1.Assignment) { a.Spec.Suspend = true }, nil},
		{"interval", "c1", func(a *fleetv1.Assignment) { a.Spec.Interval = &metav1.Duration{Duration: 1} }, nil},
		{"retry interval", "c1", func(a *fleetv1.Assignment) { a.Spec.RetryInterval = &metav1.Duration{Duration: 1} }, nil},
		{"agent version", "c1", func(a *fleetv1.Assignment) { a.Spec.AgentVersion = "v9.9.9" }, nil},
		{"unplaced dependency", "c1", func(a *fleetv1.Assignment) { a.Spec.UnplacedDependencies = []string{"ks.team-a.db"} }, nil},
		{"health expression changed", "c1", func(a *fleetv1.Assignment) { a.Spec.HealthCheckExprs[0].Current = "true" }, nil},
		{"health expression dropped", "c1", func(a *fleetv1.Assignment) { a.Spec.HealthCheckExprs[0].Failed = "" }, nil},
		{"health expressions removed", "c1", func(a *fleetv1.Assignment) { a.Spec.HealthCheckExprs = nil }, nil},
		{"untrusted key", "c1", func(*fleetv1.Assignment) {}, []ed25519.PublicKey{other.Public().(ed25519.PublicKey)}},
		{"garbage signature", "c1", func(a *fleetv1.Assignment) { a.Spec.Artifact.Signature = "!!" }, nil},
	} {
		a := signedAssignment(t, key)
		tc.edit(a)
		keys := tc.keys
		if keys == nil {
			keys = trusted
		}
		if err := VerifyStatement(tc.cluster, a, keys); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: got %v, want ErrSignature", tc.name, err)
		}
	}
	// A bare-digest signature (the old format) is no statement signature.
	a := signedAssignment(t, key)
	a.Spec.Artifact.Signature = Sign(key, a.Spec.Artifact.Digest)
	if err := VerifyStatement("c1", a, trusted); err == nil {
		t.Error("a digest signature passed as a statement signature")
	}
	// Status and labels are not part of the statement.
	a = signedAssignment(t, key)
	a.Status.Message = "anything"
	a.Labels = map[string]string{"x": "y"}
	if err := VerifyStatement("c1", a, trusted); err != nil {
		t.Errorf("status or labels changed the statement: %v", err)
	}
}

// FuzzStatement: any change of cluster, namespace or name breaks the signature, and
// arbitrary inputs never panic the verification.
func FuzzStatement(f *testing.F) {
	key, _ := GenerateKey()
	trusted := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	f.Add("c1", "flotilla-cluster-c1", "ks.a.b", "sa", "ns", "url")
	f.Fuzz(func(t *testing.T, cluster, ns, name, sa, target, url string) {
		a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: fleetv1.AssignmentSpec{ServiceAccountName: sa, TargetNamespace: target, Artifact: fleetv1.SignedArtifact{URL: url}}}
		sig, err := SignStatement(key, cluster, a)
		if err != nil {
			t.Fatal(err)
		}
		a.Spec.Artifact.Signature = sig
		if err := VerifyStatement(cluster, a, trusted); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err := VerifyStatement(cluster+"x", a, trusted); err == nil {
			t.Fatal("signature accepted for another cluster")
		}
		a.Spec.TargetNamespace += "x"
		if err := VerifyStatement(cluster, a, trusted); err == nil {
			t.Fatal("signature accepted after the target namespace changed")
		}
	})
}
