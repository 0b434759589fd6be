package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// TestGitRefNameAndIncludeOnClusters: a GitRepository pinned to a pull request's
// ref (spec.ref.name, not main) that includes another repository's folder
// (spec.include) lands on two clusters as one artifact; a new commit in the
// included repository reaches both clusters through the including one.
func TestGitRefNameAndIncludeOnClusters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "srcfields")
	hub := fleet.HubClient()
	spokes := []string{"spoke-1", "spoke-2"}
	spokeNamespace(t, fleet, appNS, spokes...)

	git := gitserver.New(t)
	platform := git.CreateRepo("platform")
	platform.Write(map[string]string{
		"shared/kustomization.yaml": kustomization("cm.yaml"),
		"shared/cm.yaml":            configMap(appNS, "shared", "platform-v1"),
		"other/cm.yaml":             configMap(appNS, "not-included", "x"),
	})
	app := git.CreateRepo("app")
	app.Write(map[string]string{
		"app/kustomization.yaml": kustomization("cm.yaml", "../platform"),
		"app/cm.yaml":            configMap(appNS, "app", "pr-7"),
	})
	app.PushRef("refs/pull/7/head")
	app.Write(map[string]string{"app/cm.yaml": configMap(appNS, "app", "main")}) // main moves on

	for _, r := range []*sourcev1.GitRepository{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "platform"}, Spec: sourcev1.GitRepositorySpec{
			URL: platform.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: sourcev1.GitRepositorySpec{
			URL: app.URL(), Ref: &sourcev1.GitRepositoryRef{Name: "refs/pull/7/head"}, Interval: metav1.Duration{Duration: time.Hour},
			Include: []sourcev1.GitRepositoryInclude{{Repository: meta.LocalObjectReference{Name: "platform"}, FromPath: "shared", ToPath: "platform"}}}},
	} {
		if err := hub.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ks := deploy(t, hub, ns, "app", "app", "./app", func(s *deliveryv1.KustomizationSpec) { s.Placement = byName(spokes...) })
	logOnFailure(t, hub, ks)
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, "")
	for _, name := range spokes {
		tg := spokeTarget(fleet, name, appNS)
		tg.wantValue(t, "app", "pr-7")           // the pull request's ref, not main
		tg.wantValue(t, "shared", "platform-v1") // the included folder
		tg.wantGone(t, "not-included")           // only fromPath was copied
	}

	// A commit to the included repository: fetched, the including repository is
	// fetched again by the watch alone (its interval is an hour), and both clusters
	// get the new value.
	commit := platform.Write(map[string]string{"shared/cm.yaml": configMap(appNS, "shared", "platform-v2")})
	fetchNow(t, hub, &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "platform"}}, commit)
	for _, name := range spokes {
		spokeTarget(fleet, name, appNS).wantValue(t, "shared", "platform-v2")
	}
}
