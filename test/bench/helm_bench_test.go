package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/charts"
)

const (
	releases       = 100
	objectsPerUnit = 10
	settle         = 15 * time.Second
)

// configMapsTemplate renders what configMaps(<release name>, count) holds, so that a
// release and a manifest Assignment make the same objects.
const configMapsTemplate = `{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-{{ $i }}
data:
  value: {{ $.Values.value | quote }}
{{- end }}
`

// helmSettings are what the hub signs for a HelmRelease with no settings of its own
// (hub/delivery/helmrelease fills the same defaults).
func helmSettings(release, storageNS string, timeout metav1.Duration) *meta.HelmReleaseSettings {
	return &meta.HelmReleaseSettings{
		ReleaseName: release, StorageNamespace: storageNS, Chart: "bench", ChartVersion: "1.0.0",
		MaxHistory: ptr.To[int32](meta.DefaultMaxHistory),
		Install:    &meta.HelmInstall{CRDs: meta.CRDsCreate, Remediation: &meta.InstallRemediation{}},
		Upgrade: &meta.HelmUpgrade{CRDs: meta.CRDsSkip,
			Remediation: &meta.UpgradeRemediation{Strategy: meta.RemediateRollback}},
		Test:           &meta.HelmTest{Timeout: ptr.To(timeout)},
		Rollback:       &meta.HelmRollback{},
		Uninstall:      &meta.HelmUninstall{},
		DriftDetection: &meta.HelmDriftDetection{Mode: meta.HelmDriftDisabled},
	}
}

// loadFigures are one run of 100 Assignments through a fresh agent.
type loadFigures struct {
	idle, peak, settled int64 // KiB
	// toSpoke is until every object (and, for Helm, every release's deployed
	// revision) is on the spoke; toReady until every Assignment reports Ready on
	// the hub.
	toSpoke, toReady time.Duration
}

// onSpoke says whether the spoke holds every ConfigMap of the 100 Assignments and,
// for Helm, a deployed revision of every release in Helm's storage.
func onSpoke(r *rig, kind string) bool {
	ctx := context.Background()
	cms := &metav1.PartialObjectMetadataList{}
	cms.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMapList"))
	if err := r.spoke.List(ctx, cms, client.InNamespace("load")); err != nil {
		return false
	}
	n := 0
	for _, cm := range cms.Items {
		if strings.HasPrefix(cm.Name, "load-") {
			n++
		}
	}
	if n < releases*objectsPerUnit {
		return false
	}
	if kind != "helm" {
		return true
	}
	secrets := &metav1.PartialObjectMetadataList{}
	secrets.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	err := r.spoke.List(ctx, secrets, client.InNamespace("load"), client.MatchingLabels{"owner": "helm", "status": "deployed"})
	return err == nil && len(secrets.Items) >= releases
}

// BenchmarkHelmVsManifests creates 100 Assignments of 10 ConfigMaps each on one
// spoke, once as Helm releases of a chart (what a HelmRelease makes) and once as
// plain manifests (what a Kustomization makes), each with a fresh agent and fresh
// control planes, and prints the time to all Ready and the agent's RSS side by side.
func BenchmarkHelmVsManifests(b *testing.B) {
	bin, _ := agentBinary(b)
	value := strings.Repeat("x", 64)
	chart := charts.Simple("bench", "1.0.0").With(map[string]string{"templates/configmap.yaml": configMapsTemplate})
	timeout := metav1.Duration{Duration: 5 * time.Minute}

	run := func(b *testing.B, kind string) loadFigures {
		r := newRig(b, "load")
		r.startAgent(b, bin)
		time.Sleep(10 * time.Second)
		f := loadFigures{idle: rssKiB(r.pid())}

		// Every artifact is made before the clock starts, as the hub has them stored
		// before it writes Assignments. Each is its own (one release's values, or one
		// Kustomization's objects), so each costs the agent one download.
		arts := make([]fleetv1.SignedArtifact, releases)
		for i := range releases {
			name := fmt.Sprintf("load-%d", i)
			if kind == "helm" {
				files := chart.FilesUnder(b, artifact.HelmChartDir+"/")
				files[artifact.HelmValuesFile] = fmt.Sprintf("count: %d\nvalue: %q\ncluster: ${cluster_name}\nrelease: %s\n", objectsPerUnit, value, name)
				arts[i] = r.arts.Add(name+"@1.0.0", files)
			} else {
				arts[i] = r.arts.Add(name, map[string]string{"manifests.yaml": configMaps(name, objectsPerUnit)})
			}
		}

		b.ResetTimer()
		began := time.Now()
		spokeDone := make(chan time.Duration, 1)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				if onSpoke(r, kind) {
					spokeDone <- time.Since(began)
					return
				}
			}
		}()
		for i := range releases {
			name := fmt.Sprintf("load-%d", i)
			r.create(b, name, "load", arts[i], func(a *fleetv1.Assignment) {
				a.Spec.Prune = true
				if kind == "helm" {
					a.Spec.Owner.Kind = "HelmRelease"
					a.Spec.Timeout = &timeout
					a.Spec.DeletionPolicy = meta.DeletionPolicyMirrorPrune
					a.Spec.PostBuild = &meta.PostBuild{Substitute: map[string]string{"cluster_name": cluster}}
					a.Spec.Helm = helmSettings(name, "load", timeout)
				}
			})
		}
		r.waitReady(b, releases, 15*time.Minute)
		f.toReady = time.Since(began)
		b.StopTimer()
		select {
		case f.toSpoke = <-spokeDone:
		case <-time.After(time.Minute):
			b.Fatal("the spoke does not hold every object although every Assignment is Ready")
		}
		time.Sleep(settle)
		f.settled, f.peak = rssKiB(r.pid()), peakRSSKiB(r.pid())
		b.ReportMetric(f.toSpoke.Seconds(), "to-spoke-s")
		b.ReportMetric(f.toReady.Seconds(), "to-ready-s")
		b.ReportMetric(float64(f.peak)/1024, "peak-RSS-MiB")
		b.ReportMetric(float64(f.settled)/1024, "settled-RSS-MiB")
		return f
	}

	var manifests, helm loadFigures
	b.Run("manifests", func(b *testing.B) { manifests = run(b, "manifests") })
	b.Run("helm", func(b *testing.B) { helm = run(b, "helm") })
	if manifests.toReady == 0 || helm.toReady == 0 {
		return
	}

	mib := func(k int64) float64 { return float64(k) / 1024 }
	title := fmt.Sprintf("%d Assignments x %d ConfigMaps, one spoke", releases, objectsPerUnit)
	fmt.Printf("\n%-44s %12s %12s\n", title, "helm", "manifests")
	fmt.Printf("%-44s %10.2f s %10.2f s\n", "time from creating them to all on the spoke", helm.toSpoke.Seconds(), manifests.toSpoke.Seconds())
	fmt.Printf("%-44s %10.2f s %10.2f s\n", "time from creating them to all Ready", helm.toReady.Seconds(), manifests.toReady.Seconds())
	fmt.Printf("%-44s %8.1f MiB %8.1f MiB\n", "agent idle RSS before (fresh agent)", mib(helm.idle), mib(manifests.idle))
	fmt.Printf("%-44s %8.1f MiB %8.1f MiB\n", "agent peak RSS (VmHWM)", mib(helm.peak), mib(manifests.peak))
	fmt.Printf("%-44s %8.1f MiB %8.1f MiB\n", fmt.Sprintf("agent RSS %s after all Ready", settle), mib(helm.settled), mib(manifests.settled))
}
