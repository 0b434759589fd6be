package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/agent"
	"github.com/flotilla-dev/flotilla/test/charts"
	"github.com/flotilla-dev/flotilla/test/env"
)

// helmArtifact is a HelmRelease's artifact as the hub packs it: the chart below
// chart/ and the merged values.
func helmArtifact(t *testing.T, ch charts.Chart, values string) map[string]string {
	files := ch.FilesUnder(t, artifact.HelmChartDir+"/")
	files[artifact.HelmValuesFile] = values
	return files
}

// TestHelmRelease runs one Helm Assignment end to end through the agent: install
// with the cluster's variables substituted in the values, upgrade, a failed upgrade
// rolled back, and uninstall when the Assignment is released.
func TestHelmRelease(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "helm")
	hub, spoke, arts, appNS := c.hub, c.spoke.Client(), c.arts, c.appNS
	ctx := context.Background()
	c.runAgent(t, c.hubCP.Config(), func(o *agent.Options) { o.ResyncInterval = time.Hour })

	settings := &meta.HelmReleaseSettings{
		ReleaseName: "web", StorageNamespace: appNS, Chart: "web", ChartVersion: "1.0.0",
		Install: &meta.HelmInstall{CreateNamespace: true, CRDs: meta.CRDsCreate, Remediation: &meta.InstallRemediation{}},
		Upgrade: &meta.HelmUpgrade{CRDs: meta.CRDsSkip, Remediation: &meta.UpgradeRemediation{Strategy: meta.RemediateRollback, RemediateLastFailure: true}},
	}
	v1 := arts.Add("web@1.0.0", helmArtifact(t, charts.Simple("web", "1.0.0"), "greeting: hi\ncluster: ${cluster_name}\n"))
	key := c.newAssignment(t, "web", v1, func(a *fleetv1.Assignment) {
		a.Spec.Owner.Kind = "HelmRelease"
		a.Spec.Prune = false
		a.Spec.Helm = settings.DeepCopy()
		a.Spec.PostBuild = &meta.PostBuild{Substitute: map[string]string{"cluster_name": c.name}}
	})
	cmKey := types.NamespacedName{Namespace: appNS, Name: "web"}

	a := waitReady(t, hub, key, v1.Digest)
	if r := a.Status.Release; r == nil || r.Name != "web" || r.Namespace != appNS || r.Revision != 1 || r.Status != "deployed" || r.ChartVersion != "1.0.0" {
		t.Errorf("status.release %+v", a.Status.Release)
	}
	if a.Status.Inventory != 1 || a.Status.AppliedRevision != "web@1.0.0" {
		t.Errorf("status %+v", a.Status)
	}
	cm := &corev1.ConfigMap{}
	if err := spoke.Get(ctx, cmKey, cm); err != nil || cm.Data["cluster"] != c.name || cm.Data["greeting"] != "hi" {
		t.Errorf("ConfigMap: %v, %v", err, cm.Data)
	}
	// A release that went well is in the status only: no Event (checked below, once
	// a failure's Event has come through the same recorder).

	v2 := arts.Add("web@1.1.0", helmArtifact(t, charts.Simple("web", "1.1.0"), "greeting: hello\n"))
	c.setArtifact(t, key, v2)
	a = waitReady(t, hub, key, v2.Digest)
	if r := a.Status.Release; r.Revision != 2 || r.ChartVersion != "1.1.0" {
		t.Errorf("status.release %+v", r)
	}

	// Suspended: a new revision is not released, and the release stays as it runs.
	v3 := arts.Add("web@1.1.1", helmArtifact(t, charts.Simple("web", "1.1.1"), "greeting: hello\n"))
	respec := func(art fleetv1.SignedArtifact, suspend bool) {
		t.Helper()
		a := current(t, hub, key)
		a.Spec.Artifact, a.Spec.Suspend = art, suspend
		arts.Sign(c.name, a)
		if err := hub.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	respec(v3, true)
	env.Eventually(t, "the suspended Assignment held", func() error {
		a = current(t, hub, key)
		if ready := readyCondition(a); ready.Reason != meta.SuspendedReason || a.Status.ObservedGeneration != a.Generation {
			return fmt.Errorf("Ready %+v at generation %d of %d", ready, a.Status.ObservedGeneration, a.Generation)
		}
		return nil
	})
	if err := spoke.Get(ctx, cmKey, cm); err != nil || cm.Data["chartVersion"] != "1.1.0" {
		t.Errorf("ConfigMap while suspended: %v, %v", err, cm.Data)
	}
	if r := a.Status.Release; r.Revision != 2 || a.Status.AppliedDigest != v2.Digest {
		t.Errorf("while suspended: status.release %+v, appliedDigest %s", r, a.Status.AppliedDigest)
	}
	respec(v2, false)
	a = waitReady(t, hub, key, v2.Digest)
	if r := a.Status.Release; r.Revision != 2 {
		t.Errorf("resumed on the running revision: status.release %+v", r)
	}

	broken := arts.Add("web@1.2.0", helmArtifact(t, charts.Simple("web", "1.2.0").With(charts.Broken()), "{}"))
	c.setArtifact(t, key, broken)
	env.Eventually(t, "the failed upgrade rolled back", func() error {
		a = current(t, hub, key)
		r, ready := a.Status.Release, readyCondition(a)
		if r == nil || r.AttemptedDigest != broken.Digest || ready.Status != "False" || !strings.Contains(r.LastAction, "rolled back to revision 2") {
			return fmt.Errorf("release %+v, Ready %s %s", r, ready.Status, ready.Message)
		}
		return nil
	})
	if a.Status.AppliedDigest != v2.Digest || readyCondition(a).Reason != "UpgradeFailed" || !strings.Contains(readyCondition(a).Message, "upgrade to 1.2.0 failed") {
		t.Errorf("status %+v, Ready %+v", a.Status, readyCondition(a))
	}
	c.expectEvent(t, "web", corev1.EventTypeWarning, "UpgradeFailed")
	c.expectNoEvent(t, "web", corev1.EventTypeNormal, meta.SucceededReason)

	if err := hub.Delete(ctx, current(t, hub, key)); err != nil {
		t.Fatal(err)
	}
	a = waitReleased(t, hub, key)
	if msg := a.Status.Message; !strings.Contains(msg, "uninstalled release web") {
		t.Errorf("message %q", msg)
	}
	if err := spoke.Get(ctx, cmKey, cm); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap after release: %v", err)
	}
	secrets := &corev1.SecretList{}
	if err := spoke.List(ctx, secrets, client.InNamespace(appNS), client.MatchingLabels{"owner": "helm"}); err != nil || len(secrets.Items) != 0 {
		t.Errorf("release Secrets after release: %v, %d", err, len(secrets.Items))
	}
}
