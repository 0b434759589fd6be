package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// The accessors below give the fields every source kind shares one name, so that the
// hub's one source reconcile (hub/source/reconcile) and the tests handle
// GitRepository, OCIRepository and HelmRepository alike without a type switch.

// GetArtifact returns the stored artifact, nil before the first successful fetch.
func (in *GitRepository) GetArtifact() *meta.Artifact { return in.Status.Artifact }

// SetArtifact records the stored artifact.
func (in *GitRepository) SetArtifact(a *meta.Artifact) { in.Status.Artifact = a }

// GetInterval returns spec.interval; zero when left out.
func (in *GitRepository) GetInterval() time.Duration { return in.Spec.Interval.Duration }

// GetTimeout returns spec.timeout; zero when left out.
func (in *GitRepository) GetTimeout() time.Duration { return durationOf(in.Spec.Timeout) }

// IsSuspended returns spec.suspend.
func (in *GitRepository) IsSuspended() bool { return in.Spec.Suspend }

// GetObservedGeneration returns status.observedGeneration.
func (in *GitRepository) GetObservedGeneration() int64 { return in.Status.ObservedGeneration }

// SetObservedGeneration records the generation fully reconciled.
func (in *GitRepository) SetObservedGeneration(g int64) { in.Status.ObservedGeneration = g }

// GetLastHandledReconcileAt returns status.lastHandledReconcileAt.
func (in *GitRepository) GetLastHandledReconcileAt() string { return in.Status.LastHandledReconcileAt }

// SetLastHandledReconcileAt records the reconcile-requested-at value handled.
func (in *GitRepository) SetLastHandledReconcileAt(v string) { in.Status.LastHandledReconcileAt = v }

// GetArtifact returns the stored artifact, nil before the first successful pull.
func (in *OCIRepository) GetArtifact() *meta.Artifact { return in.Status.Artifact }

// SetArtifact records the stored artifact.
func (in *OCIRepository) SetArtifact(a *meta.Artifact) { in.Status.Artifact = a }

// GetInterval returns spec.interval; zero when left out.
func (in *OCIRepository) GetInterval() time.Duration { return in.Spec.Interval.Duration }

// GetTimeout returns spec.timeout; zero when left out.
func (in *OCIRepository) GetTimeout() time.Duration { return durationOf(in.Spec.Timeout) }

// IsSuspended returns spec.suspend.
func (in *OCIRepository) IsSuspended() bool { return in.Spec.Suspend }

// GetObservedGeneration returns status.observedGeneration.
func (in *OCIRepository) GetObservedGeneration() int64 { return in.Status.ObservedGeneration }

// SetObservedGeneration records the generation fully reconciled.
func (in *OCIRepository) SetObservedGeneration(g int64) { in.Status.ObservedGeneration = g }

// GetLastHandledReconcileAt returns status.lastHandledReconcileAt.
func (in *OCIRepository) GetLastHandledReconcileAt() string { return in.Status.LastHandledReconcileAt }

// SetLastHandledReconcileAt records the reconcile-requested-at value handled.
func (in *OCIRepository) SetLastHandledReconcileAt(v string) { in.Status.LastHandledReconcileAt = v }

// GetArtifact returns the stored index, nil for type oci or before the first fetch.
func (in *HelmRepository) GetArtifact() *meta.Artifact { return in.Status.Artifact }

// SetArtifact records the stored index.
func (in *HelmRepository) SetArtifact(a *meta.Artifact) { in.Status.Artifact = a }

// GetInterval returns spec.interval; zero when left out.
func (in *HelmRepository) GetInterval() time.Duration { return in.Spec.Interval.Duration }

// GetTimeout returns spec.timeout; zero when left out.
func (in *HelmRepository) GetTimeout() time.Duration { return durationOf(in.Spec.Timeout) }

// IsSuspended returns spec.suspend.
func (in *HelmRepository) IsSuspended() bool { return in.Spec.Suspend }

// GetObservedGeneration returns status.observedGeneration.
func (in *HelmRepository) GetObservedGeneration() int64 { return in.Status.ObservedGeneration }

// SetObservedGeneration records the generation fully reconciled.
func (in *HelmRepository) SetObservedGeneration(g int64) { in.Status.ObservedGeneration = g }

// GetLastHandledReconcileAt returns status.lastHandledReconcileAt.
func (in *HelmRepository) GetLastHandledReconcileAt() string { return in.Status.LastHandledReconcileAt }

// SetLastHandledReconcileAt records the reconcile-requested-at value handled.
func (in *HelmRepository) SetLastHandledReconcileAt(v string) { in.Status.LastHandledReconcileAt = v }

func durationOf(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}

// ArtifactOf returns the stored artifact of any source kind, nil for anything else.
func ArtifactOf(o any) *meta.Artifact {
	if s, ok := o.(interface{ GetArtifact() *meta.Artifact }); ok {
		return s.GetArtifact()
	}
	return nil
}
