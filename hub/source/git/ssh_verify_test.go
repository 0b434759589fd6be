package git_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/go-cmp/cmp"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/sshgit"
)

func failedWith(reason, msg string) func(*sourcev1.GitRepository) error {
	return func(o *sourcev1.GitRepository) error {
		c := apimeta.FindStatusCondition(o.Status.Conditions, meta.ReadyCondition)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason || !strings.Contains(c.Message, msg) {
			return fmt.Errorf("Ready = %+v, want False/%s with %q", c, reason, msg)
		}
		return nil
	}
}

func (h *hub) create(t *testing.T, obj *sourcev1.GitRepository) {
	t.Helper()
	if err := h.c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

// TestGitRepositorySSHAndVerification shares one API server between the SSH and
// the OpenPGP tests, to keep the package's run time down.
func TestGitRepositorySSHAndVerification(t *testing.T) {
	h := startHub(t)
	t.Run("ssh", func(t *testing.T) { testOverSSH(t, h) })
	t.Run("verify", func(t *testing.T) { testVerification(t, h) })
}

func testOverSSH(t *testing.T, h *hub) {
	gs := gitserver.New(t)
	repo := gs.CreateRepo("fleet")
	head := repo.Write(map[string]string{"deploy/app.yaml": "kind: ConfigMap\n"})

	srv := sshgit.New(t, gs.Root())
	key, pub := sshgit.NewClientKey(t)
	srv.Authorize(pub)
	// Another server's host key: what a man in the middle would present.
	other := sshgit.New(t, gs.Root())

	ns := h.namespace(t, "ssh-fetch")
	h.secret(t, ns, "deploy-key", map[string]string{"identity": string(key), "known_hosts": srv.KnownHosts()})
	h.secret(t, ns, "wrong-host", map[string]string{"identity": string(key), "known_hosts": other.KnownHosts()})
	strangerKey, _ := sshgit.NewClientKey(t)
	h.secret(t, ns, "wrong-key", map[string]string{"identity": string(strangerKey), "known_hosts": srv.KnownHosts()})

	repoFor := func(name, secret string) *sourcev1.GitRepository {
		return &sourcev1.GitRepository{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: sourcev1.GitRepositorySpec{
				URL: srv.URL("fleet"), Interval: metav1.Duration{Duration: time.Hour},
				SecretRef: &meta.LocalObjectReference{Name: secret},
			},
		}
	}
	h.create(t, repoFor("good", "deploy-key"))
	h.create(t, repoFor("unknown-host", "wrong-host"))
	h.create(t, repoFor("unknown-key", "wrong-key"))

	t.Run("right key and known host", func(t *testing.T) {
		got := h.waitFor(t, ns, "good", readyWith("main@sha1:"+head))
		files := download(t, got.Status.Artifact)
		if diff := cmp.Diff(map[string]string{"deploy/app.yaml": "kind: ConfigMap\n"}, files); diff != "" {
			t.Fatal(diff)
		}
	})
	t.Run("unknown host key is refused", func(t *testing.T) {
		got := h.waitFor(t, ns, "unknown-host", failedWith(meta.GitOperationFailedReason, "refusing to connect: host key"))
		if got.Status.Artifact != nil {
			t.Fatalf("artifact %+v from an untrusted host", got.Status.Artifact)
		}
	})
	t.Run("unknown client key fails authentication", func(t *testing.T) {
		got := h.waitFor(t, ns, "unknown-key", failedWith(meta.GitOperationFailedReason, "unable to authenticate"))
		if got.Status.Artifact != nil {
			t.Fatalf("artifact %+v without authentication", got.Status.Artifact)
		}
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

func verifiedIs(status metav1.ConditionStatus) func(*sourcev1.GitRepository) error {
	return func(o *sourcev1.GitRepository) error {
		c := apimeta.FindStatusCondition(o.Status.Conditions, meta.SourceVerifiedCondition)
		if c == nil || c.Status != status {
			return fmt.Errorf("SourceVerified = %+v, want %s", c, status)
		}
		return nil
	}
}

func both(conds ...func(*sourcev1.GitRepository) error) func(*sourcev1.GitRepository) error {
	return func(o *sourcev1.GitRepository) error {
		for _, c := range conds {
			if err := c(o); err != nil {
				return err
			}
		}
		return nil
	}
}

func testVerification(t *testing.T, h *hub) {
	gs := gitserver.New(t)
	trusted, trustedPub := newKey(t, "release")
	other, otherPub := newKey(t, "colleague")
	stranger, _ := newKey(t, "stranger")

	ns := h.namespace(t, "verify")
	// Two keys in two Secret keys: either may sign.
	h.secret(t, ns, "pgp", map[string]string{"release.asc": trustedPub, "colleague.asc": otherPub})

	t.Run("HEAD", func(t *testing.T) {
		repo := gs.CreateRepo("head")
		first := repo.WriteSigned(map[string]string{"app.yaml": "v: 1\n"}, trusted)
		h.create(t, &sourcev1.GitRepository{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "head"},
			Spec: sourcev1.GitRepositorySpec{
				URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour},
				Verify: &sourcev1.GitRepositoryVerification{Mode: "HEAD", SecretRef: meta.LocalObjectReference{Name: "pgp"}},
			},
		})
		good := h.waitFor(t, ns, "head", both(readyWith("main@sha1:"+first), verifiedIs(metav1.ConditionTrue)))
		if c := apimeta.FindStatusCondition(good.Status.Conditions, meta.SourceVerifiedCondition); !strings.Contains(c.Message, "release@flotilla.invalid") {
			t.Fatalf("SourceVerified message %q does not name the signer", c.Message)
		}

		second := repo.WriteSigned(map[string]string{"app.yaml": "v: 2\n"}, other)
		h.requestReconcile(t, ns, "head")
		h.waitFor(t, ns, "head", both(readyWith("main@sha1:"+second), verifiedIs(metav1.ConditionTrue)))
		prev := h.get(t, ns, "head").Status.Artifact

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
				h.requestReconcile(t, ns, "head")
				got := h.waitFor(t, ns, "head", both(
					failedWith(meta.VerificationFailedReason, "commit "+bad+" "+tc.msg), verifiedIs(metav1.ConditionFalse)))
				if diff := cmp.Diff(prev, got.Status.Artifact); diff != "" {
					t.Fatalf("an unverified revision changed the artifact:\n%s", diff)
				}
				if apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.StalledCondition) {
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

		mk := func(name, tag string) {
			h.create(t, &sourcev1.GitRepository{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: sourcev1.GitRepositorySpec{
					URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour},
					Ref:    &sourcev1.GitRepositoryRef{Tag: tag},
					Verify: &sourcev1.GitRepositoryVerification{Mode: "Tag", SecretRef: meta.LocalObjectReference{Name: "pgp"}},
				},
			})
		}
		mk("tag-trusted", "v1.0.0")
		mk("tag-untrusted", "v2.0.0")
		mk("tag-lightweight", "v3.0.0")
		h.waitFor(t, ns, "tag-trusted", both(readyWith("v1.0.0@sha1:"+head), verifiedIs(metav1.ConditionTrue)))
		for name, msg := range map[string]string{"tag-untrusted": "not signed by any key", "tag-lightweight": "lightweight tag"} {
			got := h.waitFor(t, ns, name, both(failedWith(meta.VerificationFailedReason, msg), verifiedIs(metav1.ConditionFalse)))
			if got.Status.Artifact != nil {
				t.Fatalf("%s: artifact %+v for an unverified tag", name, got.Status.Artifact)
			}
		}
	})
}
