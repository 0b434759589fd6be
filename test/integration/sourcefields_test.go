package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/artifact"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/registry"
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

// TestOCILayerSelectorAndDockerConfigOnClusters: an OCIRepository pulled from a
// registry that wants credentials, with a .dockerconfigjson Secret, taking the layer
// of its media type out of a multi-layer artifact (spec.layerSelector), lands on two
// clusters: the manifests of that layer, none of the other layer's.
func TestOCILayerSelectorAndDockerConfigOnClusters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "ocifields")
	hub := fleet.HubClient()
	spokes := []string{"spoke-1", "spoke-2"}
	spokeNamespace(t, fleet, appNS, spokes...)

	reg := registry.New(t, registry.WithBasicAuth("fleet", "s3cret"))
	pack := func(files map[string]string) []byte {
		m := map[string][]byte{}
		for k, v := range files {
			m[k] = []byte(v)
		}
		data, err := artifact.Pack(m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	const manifestsType = "application/vnd.example.manifests.v1.tar+gzip"
	reg.PushLayers("apps/web", "1.0.0",
		registry.Layer{Data: pack(map[string]string{"cm.yaml": configMap(appNS, "docs", "not-selected")}), MediaType: registry.ContentMediaType},
		registry.Layer{Data: pack(map[string]string{
			"kustomization.yaml": kustomization("cm.yaml"),
			"cm.yaml":            configMap(appNS, "web", "from-selected-layer"),
		}), MediaType: manifestsType},
	)
	auth := base64.StdEncoding.EncodeToString([]byte("fleet:s3cret"))
	if err := hub.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host(), auth))},
	}); err != nil {
		t.Fatal(err)
	}
	src := &sourcev1.OCIRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: sourcev1.OCIRepositorySpec{
		URL: reg.URL("apps/web"), Ref: &sourcev1.OCIRepositoryRef{Tag: "1.0.0"}, Insecure: true,
		SecretRef:     &meta.LocalObjectReference{Name: "registry"},
		LayerSelector: &sourcev1.OCILayerSelector{MediaType: manifestsType, Operation: sourcev1.OCILayerExtract},
		Interval:      metav1.Duration{Duration: time.Hour},
	}}
	if err := hub.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	ks := deploy(t, hub, ns, "web", "web", "./", func(s *deliveryv1.KustomizationSpec) {
		s.SourceRef = deliveryv1.SourceReference{Kind: sourcev1.OCIRepositoryKind, Name: "web"}
		s.Placement = byName(spokes...)
	})
	logOnFailure(t, hub, ks)
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, "")
	for _, name := range spokes {
		tg := spokeTarget(fleet, name, appNS)
		tg.wantValue(t, "web", "from-selected-layer")
		tg.wantGone(t, "docs")
	}
}
