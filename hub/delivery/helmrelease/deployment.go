package helmrelease

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/delivery/engine"
	"github.com/flotilla-dev/flotilla/tenancy"
)

// deployment is what the engine needs of a packaged and admitted HelmRelease: the
// identity comes from the tenancy decision (the tenant's, or the spec's for the
// platform), never from the spec alone. Every default is filled here, so that the
// signed statement says exactly what each spoke runs.
func deployment(hr *deliveryv1.HelmRelease, dec tenancy.Decision) engine.Deployment {
	timeout := metav1.Duration{Duration: DefaultTimeout}
	if hr.Spec.Timeout != nil {
		timeout = *hr.Spec.Timeout
	}
	spec := fleetv1.AssignmentSpec{
		Artifact: fleetv1.SignedArtifact{
			URL: hr.Status.Artifact.URL, Digest: hr.Status.Artifact.Digest, Revision: hr.Status.Artifact.Revision,
		},
		ServiceAccountName:      dec.ServiceAccountName,
		ServiceAccountNamespace: dec.ServiceAccountNamespace,
		TargetNamespace:         hr.EffectiveTargetNamespace(),
		// A release leaves with its Assignment: the spoke uninstalls it when the
		// HelmRelease is deleted or the cluster is no longer targeted.
		Prune: true,
		ApplySettings: meta.ApplySettings{
			// Empty, so that the engine adds cluster_name and the Cluster's variables,
			// which the spoke substitutes in values.yaml (never in the templates).
			PostBuild:      &meta.PostBuild{},
			Timeout:        &timeout,
			DeletionPolicy: meta.DeletionPolicyMirrorPrune,
		},
		Helm: settings(hr, timeout),
	}
	for _, d := range hr.Spec.DependsOn {
		ns := d.Namespace
		if ns == "" {
			ns = hr.Namespace
		}
		spec.DependsOn = append(spec.DependsOn, fleetv1.AssignmentName(deliveryv1.HelmReleaseKind, ns, d.Name))
	}
	return engine.Deployment{
		Owner: hr, Kind: deliveryv1.HelmReleaseKind, Spec: spec, Tenant: dec.Tenant,
		Placement: hr.Spec.Placement, Rollout: hr.Spec.Rollout, RolloutStatus: &hr.Status.Rollout,
	}
}

// settings are the Helm settings of the HelmRelease with every default filled.
func settings(hr *deliveryv1.HelmRelease, timeout metav1.Duration) *meta.HelmReleaseSettings {
	s := &meta.HelmReleaseSettings{
		ReleaseName:      hr.EffectiveReleaseName(),
		StorageNamespace: hr.EffectiveStorageNamespace(),
		Chart:            hr.Spec.Chart.Chart,
		ChartVersion:     hr.Status.Artifact.Revision,
		MaxHistory:       ptr.To[int32](meta.DefaultMaxHistory),
		Install:          &meta.HelmInstall{},
		Upgrade:          &meta.HelmUpgrade{},
		Test:             &meta.HelmTest{},
		Rollback:         &meta.HelmRollback{},
		Uninstall:        &meta.HelmUninstall{},
		DriftDetection:   &meta.HelmDriftDetection{},
	}
	if hr.Spec.MaxHistory != nil {
		s.MaxHistory = ptr.To(*hr.Spec.MaxHistory)
	}
	if hr.Spec.Install != nil {
		s.Install = hr.Spec.Install.DeepCopy()
	}
	if s.Install.CRDs == "" {
		s.Install.CRDs = meta.CRDsCreate
	}
	if s.Install.Remediation == nil {
		s.Install.Remediation = &meta.InstallRemediation{}
	}
	if hr.Spec.Upgrade != nil {
		s.Upgrade = hr.Spec.Upgrade.DeepCopy()
	}
	if s.Upgrade.CRDs == "" {
		s.Upgrade.CRDs = meta.CRDsSkip
	}
	if s.Upgrade.Remediation == nil {
		s.Upgrade.Remediation = &meta.UpgradeRemediation{}
	}
	if s.Upgrade.Remediation.Strategy == "" {
		s.Upgrade.Remediation.Strategy = meta.RemediateRollback
	}
	if hr.Spec.Test != nil {
		s.Test = hr.Spec.Test.DeepCopy()
	}
	if s.Test.Timeout == nil {
		s.Test.Timeout = ptr.To(timeout)
	}
	if hr.Spec.Rollback != nil {
		s.Rollback = hr.Spec.Rollback.DeepCopy()
	}
	if hr.Spec.Uninstall != nil {
		s.Uninstall = hr.Spec.Uninstall.DeepCopy()
	}
	if hr.Spec.DriftDetection != nil {
		s.DriftDetection = hr.Spec.DriftDetection.DeepCopy()
	}
	if s.DriftDetection.Mode == "" {
		s.DriftDetection.Mode = meta.HelmDriftDisabled
	}
	return s
}
