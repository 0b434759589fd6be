package git_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/go-cmp/cmp"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/sourceenv"
	"github.com/flotilla-dev/flotilla/test/sshgit"
)

func testOverSSH(t *testing.T, h *sourceenv.Hub) {
	gs := gitserver.New(t)
	repo := gs.CreateRepo("fleet")
	head := repo.Write(map[string]string{"deploy/app.yaml": "kind: ConfigMap\n"})

	srv := sshgit.New(t, gs.Root())
	key, pub := sshgit.NewClientKey(t)
	srv.Authorize(pub)
	// Another server's host key: what a man in the middle would present.
	other := sshgit.New(t, gs.Root())

	ns := h.Namespace(t, "ssh-fetch")
	h.Secret(t, ns, "deploy-key", map[string]string{"identity": string(key), "known_hosts": srv.KnownHosts()})
	h.Secret(t, ns, "wrong-host", map[string]string{"identity": string(key), "known_hosts": other.KnownHosts()})
	strangerKey, _ := sshgit.NewClientKey(t)
	h.Secret(t, ns, "wrong-key", map[string]string{"identity": string(strangerKey), "known_hosts": srv.KnownHosts()})

	good := repository(ns, "good", srv.URL("fleet"), "deploy-key")
	unknownHost := repository(ns, "unknown-host", srv.URL("fleet"), "wrong-host")
	unknownKey := repository(ns, "unknown-key", srv.URL("fleet"), "wrong-key")
	for _, obj := range []*sourcev1.GitRepository{good, unknownHost, unknownKey} {
		h.Create(t, obj)
	}

	t.Run("right key and known host", func(t *testing.T) {
		h.WaitFor(t, good, sourceenv.ReadyWith("main@sha1:"+head))
		files := sourceenv.Download(t, good.Status.Artifact)
		if diff := cmp.Diff(map[string]string{"deploy/app.yaml": "kind: ConfigMap\n"}, files); diff != "" {
			t.Fatal(diff)
		}
	})
	t.Run("unknown host key is refused", func(t *testing.T) {
		h.WaitFor(t, unknownHost, sourceenv.FailedWith(meta.GitOperationFailedReason, "refusing to connect: host key"), sourceenv.NoArtifact)
	})
	t.Run("unknown client key fails authentication", func(t *testing.T) {
		h.WaitFor(t, unknownKey, sourceenv.FailedWith(meta.GitOperationFailedReason, "unable to authenticate"), sourceenv.NoArtifact)
	})
}

// newKey makes an OpenPGP key pair and returns it with its armored public key.
func newKey(t *testing.T, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@flotilla.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return e, buf.String()
}

func verifiedIs(status metav1.ConditionStatus) func(sourceenv.Source) error {
	return sourceenv.ConditionIs(meta.SourceVerifiedCondition, status)
}

func testVerification(t *testing.T, h *sourceenv.Hub) {
	gs := gitserver.New(t)
	trusted, trustedPub := newKey(t, "release")
	other, otherPub := newKey(t, "colleague")
	stranger, _ := newKey(t, "stranger")

	ns := h.Namespace(t, "verify")
	// Two keys in two Secret keys: either may sign.
	h.Secret(t, ns, "pgp", map[string]string{"release.asc": trustedPub, "colleague.asc": otherPub})

	t.Run("HEAD", func(t *testing.T) {
		repo := gs.CreateRepo("head")
		first := repo.WriteSigned(map[string]string{"app.yaml": "v: 1\n"}, trusted)
		obj := repository(ns, "head", repo.URL(), "")
		obj.Spec.Verify = &sourcev1.GitRepositoryVerification{Mode: "HEAD", SecretRef: meta.LocalObjectReference{Name: "pgp"}}
		h.Create(t, obj)
		h.WaitFor(t, obj, sourceenv.ReadyWith("main@sha1:"+first), verifiedIs(metav1.ConditionTrue))
		if c := apimeta.FindStatusCondition(obj.Status.Conditions, meta.SourceVerifiedCondition); !strings.Contains(c.Message, "release@flotilla.invalid") {
			t.Fatalf("SourceVerified message %q does not name the signer", c.Message)
		}

		second := repo.WriteSigned(map[string]string{"app.yaml": "v: 2\n"}, other)
		h.RequestReconcile(t, obj)
		h.WaitFor(t, obj, sourceenv.ReadyWith("main@sha1:"+second), verifiedIs(metav1.ConditionTrue))
		prev := obj.Status.Artifact.DeepCopy()

		for _, tc := range []struct {
			name  string
			write func() string
			msg   string
		}{
			{"untrusted key", func() string { return repo.WriteSigned(map[string]string{"app.yaml": "evil\n"}, stranger) }, "is not signed by any key"},
			{"unsigned", func() string { return repo.Write(map[string]string{"app.yaml": "unsigned\n"}) }, "is not signed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bad := tc.write()
				h.RequestReconcile(t, obj)
				h.WaitFor(t, obj, sourceenv.FailedWith(meta.VerificationFailedReason, "commit "+bad+" "+tc.msg), verifiedIs(metav1.ConditionFalse))
				if diff := cmp.Diff(prev, obj.Status.Artifact); diff != "" {
					t.Fatalf("an unverified revision changed the artifact:\n%s", diff)
				}
				if apimeta.IsStatusConditionTrue(obj.Status.Conditions, meta.StalledCondition) {
					t.Fatal("verification failure stalls; it should retry at the interval")
				}
			})
		}
	})

	t.Run("Tag", func(t *testing.T) {
		repo := gs.CreateRepo("tags")
		repo.Write(map[string]string{"app.yaml": "v: 1\n"})
		repo.TagSigned("v1.0.0", trusted)
		head := repo.Head()
		repo.Write(map[string]string{"app.yaml": "v: 2\n"})
		repo.TagSigned("v2.0.0", stranger)
		repo.Write(map[string]string{"app.yaml": "v: 3\n"})
		repo.Tag("v3.0.0") // lightweight: nothing to verify

		mkRef := func(name string, ref sourcev1.GitRepositoryRef) *sourcev1.GitRepository {
			obj := repository(ns, name, repo.URL(), "")
			obj.Spec.Ref = &ref
			obj.Spec.Verify = &sourcev1.GitRepositoryVerification{Mode: "Tag", SecretRef: meta.LocalObjectReference{Name: "pgp"}}
			h.Create(t, obj)
			return obj
		}
		mk := func(name, tag string) *sourcev1.GitRepository {
			return mkRef(name, sourcev1.GitRepositoryRef{Tag: tag})
		}
		trustedTag := mk("tag-trusted", "v1.0.0")
		// The same tags named as full references (spec.ref.name).
		trustedName := mkRef("name-trusted", sourcev1.GitRepositoryRef{Name: "refs/tags/v1.0.0"})
		untrusted := map[*sourcev1.GitRepository]string{
			mk("tag-untrusted", "v2.0.0"):   "not signed by any key",
			mk("tag-lightweight", "v3.0.0"): "lightweight tag",
			mkRef("name-untrusted", sourcev1.GitRepositoryRef{Name: "refs/tags/v2.0.0"}):   "not signed by any key",
			mkRef("name-lightweight", sourcev1.GitRepositoryRef{Name: "refs/tags/v3.0.0"}): "lightweight tag",
		}
		// A branch named by ref.name has no tag to verify: refused before any fetch.
		branch := mkRef("name-branch", sourcev1.GitRepositoryRef{Name: "refs/heads/main"})
		h.WaitFor(t, trustedTag, sourceenv.ReadyWith("v1.0.0@sha1:"+head), verifiedIs(metav1.ConditionTrue))
		h.WaitFor(t, trustedName, sourceenv.ReadyWith("refs/tags/v1.0.0@sha1:"+head), verifiedIs(metav1.ConditionTrue))
		h.WaitFor(t, branch, sourceenv.FailedWith(meta.VerificationFailedReason, "refs/tags/"), sourceenv.ConditionIs(meta.StalledCondition, metav1.ConditionTrue))
		for obj, msg := range untrusted {
			h.WaitFor(t, obj, sourceenv.FailedWith(meta.VerificationFailedReason, msg), verifiedIs(metav1.ConditionFalse), sourceenv.NoArtifact)
		}
	})

	t.Run("missing key secret waits", func(t *testing.T) {
		repo := gs.CreateRepo("nokeys")
		repo.WriteSigned(map[string]string{"app.yaml": "v: 1\n"}, trusted)
		obj := repository(ns, "nokeys", repo.URL(), "")
		obj.Spec.Verify = &sourcev1.GitRepositoryVerification{Mode: "HEAD", SecretRef: meta.LocalObjectReference{Name: "missing"}}
		h.Create(t, obj)
		h.WaitFor(t, obj, sourceenv.FailedWith(sourcev1.SecretNotFoundReason, "missing"), verifiedIs(metav1.ConditionFalse),
			sourceenv.ConditionIs(meta.ReconcilingCondition, metav1.ConditionTrue))
	})
}
