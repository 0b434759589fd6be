package git_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/git"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/sourceenv"
)

// TestGitRepository runs every scenario against one control plane with the
// GitRepository controller, each in its own namespace and in parallel.
func TestGitRepository(t *testing.T) {
	h := sourceenv.Start(t, "hub", func(mgr ctrl.Manager, store *storage.Store) error {
		return (&git.Reconciler{Store: store}).SetupWithManager(mgr)
	})
	for _, s := range []struct {
		name string
		test func(*testing.T, *sourceenv.Hub)
	}{
		{"fetch", testFetch},
		{"wrong password", testWrongPassword},
		{"ssh without a secret stalls", testSSHWithoutSecret},
		{"ssh", testOverSSH},
		{"verify", testVerification},
		{"ref name", testRefName},
		{"include", testInclude},
		{"include cycle", testIncludeCycle},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.test(t, h)
		})
	}
}

func repository(ns, name, url, secret string) *sourcev1.GitRepository {
	obj := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: sourcev1.GitRepositorySpec{
			URL: url,
			// Long enough that only the tests' requests cause the fetches they await.
			Interval: metav1.Duration{Duration: time.Hour},
		},
	}
	if secret != "" {
		obj.Spec.SecretRef = &meta.LocalObjectReference{Name: secret}
	}
	return obj
}

func testFetch(t *testing.T, h *sourceenv.Hub) {
	srv := gitserver.New(t, gitserver.WithBasicAuth("flotilla", "s3cret"))
	repo := srv.CreateRepo("fleet")
	first := repo.Write(map[string]string{
		"deploy/app.yaml":    "kind: ConfigMap\n",
		"deploy/db.secret":   "hush",
		"docs/readme.md":     "not for clusters",
		git.SourceIgnoreFile: "*.secret\n",
	})

	ns := h.Namespace(t, "fetch")
	h.Secret(t, ns, "creds", map[string]string{"username": "flotilla", "password": "s3cret"})
	obj := repository(ns, "fleet", repo.URL(), "creds")
	obj.Spec.Ignore = ptr.To("docs/\n")
	h.Create(t, obj)

	var firstArtifact meta.Artifact
	t.Run("stores the artifact", func(t *testing.T) {
		h.WaitFor(t, obj, sourceenv.ReadyWith("main@sha1:"+first))
		firstArtifact = *obj.Status.Artifact
		files := sourceenv.Download(t, obj.Status.Artifact)
		want := map[string]string{"deploy/app.yaml": "kind: ConfigMap\n", git.SourceIgnoreFile: "*.secret\n"}
		if diff := cmp.Diff(want, files); diff != "" {
			t.Fatalf("artifact files (-want +got):\n%s", diff)
		}
		if !h.Store.Has(obj.Status.Artifact.Digest) {
			t.Fatal("artifact not in the store")
		}
		ready := apimeta.FindStatusCondition(obj.Status.Conditions, meta.ReadyCondition)
		if ready.Reason != meta.SucceededReason || ready.Message != "stored artifact for revision main@sha1:"+first {
			t.Fatalf("Ready = %+v", ready)
		}
		if !apimeta.IsStatusConditionTrue(obj.Status.Conditions, meta.ArtifactInStorageCondition) {
			t.Fatalf("ArtifactInStorage not True: %+v", obj.Status.Conditions)
		}
		if obj.Status.ObservedGeneration != obj.Generation {
			t.Fatalf("observedGeneration %d, generation %d", obj.Status.ObservedGeneration, obj.Generation)
		}
		env.Eventually(t, "one NewArtifact event", func() error {
			if r := h.EventReasons(t, ns, "fleet"); !cmp.Equal(r, []string{"Normal/NewArtifact"}) {
				return fmt.Errorf("events %v", r)
			}
			return nil
		})
	})

	t.Run("unchanged fetch changes nothing", func(t *testing.T) {
		at := h.RequestReconcile(t, obj)
		h.WaitFor(t, obj, sourceenv.Handled(at))
		if diff := cmp.Diff(firstArtifact, *obj.Status.Artifact); diff != "" {
			t.Fatalf("artifact changed:\n%s", diff)
		}
	})

	t.Run("new commit on request", func(t *testing.T) {
		second := repo.Write(map[string]string{"deploy/extra.yaml": "kind: Secret\n"})
		at := h.RequestReconcile(t, obj)
		h.WaitFor(t, obj, sourceenv.ReadyWith("main@sha1:"+second))
		if obj.Status.LastHandledReconcileAt != at {
			t.Fatalf("lastHandledReconcileAt %q, want %q", obj.Status.LastHandledReconcileAt, at)
		}
		if obj.Status.Artifact.Digest == firstArtifact.Digest {
			t.Fatal("new content, same digest")
		}
		files := sourceenv.Download(t, obj.Status.Artifact)
		if files["deploy/extra.yaml"] != "kind: Secret\n" || len(files) != 3 {
			t.Fatalf("files %v", files)
		}
		if !h.Store.Has(firstArtifact.Digest) {
			t.Fatal("the previous artifact went from the store while agents may still fetch it")
		}
	})

	t.Run("failure keeps the previous artifact", func(t *testing.T) {
		before := obj.Status.Artifact.DeepCopy()
		h.Update(t, obj, func() { obj.Spec.Ref = &sourcev1.GitRepositoryRef{Branch: "missing"} })
		h.WaitFor(t, obj, sourceenv.FailedWith(meta.GitOperationFailedReason, "refs/heads/missing"))
		if diff := cmp.Diff(before, obj.Status.Artifact); diff != "" {
			t.Fatalf("artifact changed on failure:\n%s", diff)
		}
		if obj.Status.ObservedGeneration == obj.Generation {
			t.Fatal("observedGeneration moved on a failed reconcile")
		}
		if !apimeta.IsStatusConditionTrue(obj.Status.Conditions, meta.ArtifactInStorageCondition) {
			t.Fatal("the previous artifact is still stored, ArtifactInStorage should stay True")
		}
		if !apimeta.IsStatusConditionTrue(obj.Status.Conditions, meta.ReconcilingCondition) {
			t.Fatal("a failure that is retried leaves Reconciling True")
		}
	})

	t.Run("suspended is left alone", func(t *testing.T) {
		// The barrier: another object of the same controller, reconciled on request.
		other := repository(ns, "other", repo.URL(), "creds")
		h.Create(t, other)
		h.WaitFor(t, other, sourceenv.Ready)

		h.Update(t, obj, func() {
			obj.Spec.Ref = nil // would fetch main and succeed, if it were fetched
			obj.Spec.Suspend = true
		})
		h.Settle(t, other) // a reconcile of obj under way before the suspension is over
		h.Get(t, obj)
		before := obj.Status.DeepCopy()
		at := h.RequestReconcile(t, obj)
		h.Settle(t, other)
		h.Get(t, obj)
		if obj.Status.LastHandledReconcileAt == at {
			t.Fatal("a suspended object was reconciled")
		}
		if diff := cmp.Diff(before, &obj.Status); diff != "" {
			t.Fatalf("status of a suspended object changed:\n%s", diff)
		}
	})
}

func testWrongPassword(t *testing.T, h *sourceenv.Hub) {
	srv := gitserver.New(t, gitserver.WithBasicAuth("flotilla", "s3cret"))
	repo := srv.CreateRepo("fleet")
	repo.Write(map[string]string{"deploy/app.yaml": "kind: ConfigMap\n"})
	ns := h.Namespace(t, "wrong-password")
	h.Secret(t, ns, "creds", map[string]string{"username": "flotilla", "password": "wrong"})
	obj := repository(ns, "fleet", repo.URL(), "creds")
	h.Create(t, obj)

	h.WaitFor(t, obj, sourceenv.FailedWith(meta.GitOperationFailedReason, "authentication required"), sourceenv.NoArtifact)
	if c := apimeta.FindStatusCondition(obj.Status.Conditions, meta.ArtifactInStorageCondition); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("ArtifactInStorage = %+v", c)
	}
	if obj.Status.ObservedGeneration != 0 {
		t.Fatalf("observedGeneration %d after failures only", obj.Status.ObservedGeneration)
	}
	h.WaitForEvent(t, obj, "Warning/"+meta.GitOperationFailedReason)
}

func testSSHWithoutSecret(t *testing.T, h *sourceenv.Hub) {
	ns := h.Namespace(t, "ssh")
	obj := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"},
		Spec:       sourcev1.GitRepositorySpec{URL: "ssh://git@example.invalid/fleet.git"},
	}
	h.Create(t, obj)
	h.WaitFor(t, obj, sourceenv.StalledWith(meta.GitOperationFailedReason, "spec.secretRef"))
}

func testRefName(t *testing.T, h *sourceenv.Hub) {
	srv := gitserver.New(t)
	repo := srv.CreateRepo("fleet")
	pr := repo.Write(map[string]string{"app.yaml": "pr: 1\n"})
	repo.PushRef("refs/pull/1/head")
	repo.Write(map[string]string{"app.yaml": "main\n"})
	ns := h.Namespace(t, "ref-name")
	obj := repository(ns, "fleet", repo.URL(), "")
	// name wins over branch, as Flux documents.
	obj.Spec.Ref = &sourcev1.GitRepositoryRef{Branch: "main", Name: "refs/pull/1/head"}
	h.Create(t, obj)
	h.WaitFor(t, obj, sourceenv.ReadyWith("refs/pull/1/head@sha1:"+pr))
	if files := sourceenv.Download(t, obj.Status.Artifact); files["app.yaml"] != "pr: 1\n" {
		t.Fatalf("files %v", files)
	}

	// The forge moves the pull request's head (Write moves main too): the next fetch follows it.
	repo.Write(map[string]string{"app.yaml": "pr: 2\n"})
	repo.PushRef("refs/pull/1/head")
	at := h.RequestReconcile(t, obj)
	h.WaitFor(t, obj, sourceenv.Handled(at), sourceenv.ReadyWith("refs/pull/1/head@sha1:"+repo.Head()))

	// A reference the server does not have keeps the last artifact.
	before := obj.Status.Artifact.DeepCopy()
	h.Update(t, obj, func() { obj.Spec.Ref = &sourcev1.GitRepositoryRef{Name: "refs/pull/404/head"} })
	h.WaitFor(t, obj, sourceenv.FailedWith(meta.GitOperationFailedReason, "refs/pull/404/head"))
	if diff := cmp.Diff(before, obj.Status.Artifact); diff != "" {
		t.Fatalf("artifact changed on failure:\n%s", diff)
	}

	h.Update(t, obj, func() { obj.Spec.Ref = &sourcev1.GitRepositoryRef{Name: "refs/heads/main"} })
	h.WaitFor(t, obj, sourceenv.ReadyWith("refs/heads/main@sha1:"+repo.Head()))

	// The API server refuses what is not a full reference.
	bad := repository(ns, "bad", repo.URL(), "")
	bad.Spec.Ref = &sourcev1.GitRepositoryRef{Name: "main"}
	if err := h.Client.Create(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "spec.ref.name") {
		t.Fatalf("creating a GitRepository with ref.name main: %v, want a validation error", err)
	}
}

func testInclude(t *testing.T, h *sourceenv.Hub) {
	srv := gitserver.New(t)
	appRepo := srv.CreateRepo("app")
	appRepo.Write(map[string]string{"deploy/app.yaml": "app\n", "shared/old.yaml": "replaced by the include\n"})
	libRepo := srv.CreateRepo("lib")
	libRepo.Write(map[string]string{"base/cm.yaml": "v1\n", "README.md": "not copied\n"})

	ns := h.Namespace(t, "include")
	lib := repository(ns, "lib", libRepo.URL(), "")
	app := repository(ns, "app", appRepo.URL(), "")
	app.Spec.Include = []sourcev1.GitRepositoryInclude{{
		Repository: meta.LocalObjectReference{Name: "lib"}, FromPath: "base", ToPath: "shared",
	}}
	// The including repository comes first: it waits for the included one's artifact,
	// and the watch wakes it up (its interval is an hour).
	h.Create(t, app)
	h.WaitFor(t, app, sourceenv.FailedWith(sourcev1.IncludeUnavailableReason, "lib not found"), sourceenv.NoArtifact)
	h.Create(t, lib)
	h.WaitFor(t, lib, sourceenv.Ready)
	h.WaitFor(t, app, sourceenv.ReadyWith("main@sha1:"+appRepo.Head()))
	want := map[string]string{"deploy/app.yaml": "app\n", "shared/cm.yaml": "v1\n"}
	if diff := cmp.Diff(want, sourceenv.Download(t, app.Status.Artifact)); diff != "" {
		t.Fatalf("artifact files (-want +got):\n%s", diff)
	}
	if len(app.Status.IncludedArtifacts) != 1 || app.Status.IncludedArtifacts[0].Digest != lib.Status.Artifact.Digest {
		t.Fatalf("includedArtifacts %+v, want lib's %s", app.Status.IncludedArtifacts, lib.Status.Artifact.Digest)
	}
	first := app.Status.Artifact.DeepCopy()

	// A new commit of the included repository: a new artifact of the including one,
	// on the watch alone (only lib is asked to reconcile).
	libRepo.Write(map[string]string{"base/cm.yaml": "v2\n"})
	at := h.RequestReconcile(t, lib)
	h.WaitFor(t, lib, sourceenv.Handled(at), sourceenv.ReadyWith("main@sha1:"+libRepo.Head()))
	env.Eventually(t, "app's artifact has lib's new file", func() error {
		h.Get(t, app)
		if app.Status.Artifact.Digest == first.Digest {
			return fmt.Errorf("digest still %s", first.Digest)
		}
		if got := sourceenv.Download(t, app.Status.Artifact)["shared/cm.yaml"]; got != "v2\n" {
			return fmt.Errorf("shared/cm.yaml = %q", got)
		}
		return nil
	})
	if app.Status.IncludedArtifacts[0].Digest != lib.Status.Artifact.Digest {
		t.Fatalf("includedArtifacts %+v, want lib's %s", app.Status.IncludedArtifacts, lib.Status.Artifact.Digest)
	}
	h.WaitForEvent(t, app, "Normal/NewArtifact")

	// A fromPath the included artifact lacks keeps the last good artifact.
	good := app.Status.Artifact.DeepCopy()
	h.Update(t, app, func() { app.Spec.Include[0].FromPath = "missing" })
	h.WaitFor(t, app, sourceenv.FailedWith(sourcev1.IncludeUnavailableReason, "no files below fromPath missing"))
	if diff := cmp.Diff(good, app.Status.Artifact); diff != "" {
		t.Fatalf("artifact changed on failure:\n%s", diff)
	}

	// A path out of the artifact is refused until the spec changes.
	h.Update(t, app, func() { app.Spec.Include[0].FromPath, app.Spec.Include[0].ToPath = "", "../../etc" })
	h.WaitFor(t, app, sourceenv.StalledWith(sourcev1.InvalidIncludeReason, "leaves the artifact"))
}

func testIncludeCycle(t *testing.T, h *sourceenv.Hub) {
	srv := gitserver.New(t)
	r := srv.CreateRepo("r")
	r.Write(map[string]string{"a": "a"})
	ns := h.Namespace(t, "include-cycle")
	a := repository(ns, "a", r.URL(), "")
	a.Spec.Include = []sourcev1.GitRepositoryInclude{{Repository: meta.LocalObjectReference{Name: "b"}}}
	b := repository(ns, "b", r.URL(), "")
	b.Spec.Include = []sourcev1.GitRepositoryInclude{{Repository: meta.LocalObjectReference{Name: "a"}}}
	self := repository(ns, "self", r.URL(), "")
	self.Spec.Include = []sourcev1.GitRepositoryInclude{{Repository: meta.LocalObjectReference{Name: "self"}}}
	h.Create(t, a)
	h.Create(t, b)
	h.Create(t, self)
	h.WaitFor(t, a, sourceenv.StalledWith(sourcev1.InvalidIncludeReason, "cycle: a → b → a"), sourceenv.NoArtifact)
	h.WaitFor(t, b, sourceenv.StalledWith(sourcev1.InvalidIncludeReason, "cycle: b → a → b"), sourceenv.NoArtifact)
	h.WaitFor(t, self, sourceenv.StalledWith(sourcev1.InvalidIncludeReason, "cycle: self → self"), sourceenv.NoArtifact)
}
