package env_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/flotilla-dev/flotilla/test/env"
)

func TestStartNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane with kube-controller-manager and kwok")
	}
	cp := env.StartControlPlane(t, "nodes", false)
	ctx := context.Background()
	env.StartNodes(t, cp)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			},
		},
	}
	if err := cp.Client().Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(t, cp.Client(), d, func(d *appsv1.Deployment) error {
		if d.Status.AvailableReplicas != 2 {
			return fmt.Errorf("status %+v", d.Status)
		}
		return nil
	})

	// Test pods (Helm test hooks) end in the phase their label names.
	for _, phase := range []corev1.PodPhase{corev1.PodSucceeded, corev1.PodFailed} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "test-" + strings.ToLower(string(phase)),
				Labels: map[string]string{"test.flotilla.dev/phase": string(phase)}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "test", Image: "busybox"}}},
		}
		if err := cp.Client().Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		env.WaitFor(t, cp.Client(), pod, func(p *corev1.Pod) error {
			if p.Status.Phase != phase {
				return fmt.Errorf("phase %q, want %s", p.Status.Phase, phase)
			}
			return nil
		})
	}
}
