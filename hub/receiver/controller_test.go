package receiver

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

func TestTargets(t *testing.T) {
	rcv := func(rs ...notificationv1.ReceiverResource) *notificationv1.Receiver {
		return &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "r"},
			Spec: notificationv1.ReceiverSpec{Resources: rs}}
	}
	got, err := Targets(rcv(
		notificationv1.ReceiverResource{Kind: "GitRepository", Name: "app"},
		notificationv1.ReceiverResource{APIVersion: "delivery.flotilla.dev/v1alpha1", Kind: "Kustomization", Name: "*", MatchLabels: map[string]string{"a": "b"}, Namespace: "team-a"},
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].GVK.String() != "source.flotilla.dev/v1alpha1, Kind=GitRepository" || got[0].Namespace != "team-a" ||
		got[1].GVK.Group != "delivery.flotilla.dev" || got[1].Name != "*" {
		t.Errorf("targets %+v", got)
	}
	for _, bad := range []struct {
		r     notificationv1.ReceiverResource
		words string
	}{
		{notificationv1.ReceiverResource{Kind: "GitRepository", Name: "app", Namespace: "team-b"}, "outside the Receiver's namespace team-a"},
		{notificationv1.ReceiverResource{Kind: "Secret", Name: "app"}, "not one the hub reconciles"},
		{notificationv1.ReceiverResource{APIVersion: "delivery.flotilla.dev/v1alpha1", Kind: "GitRepository", Name: "app"}, "served as source.flotilla.dev/v1alpha1"},
		{notificationv1.ReceiverResource{Kind: "GitRepository", Name: "app", MatchLabels: map[string]string{"a": "b"}}, "matchLabels needs name"},
	} {
		_, err := Targets(rcv(notificationv1.ReceiverResource{Kind: "GitRepository", Name: "ok"}, bad.r))
		var na *NotAllowedError
		if !errors.As(err, &na) || !strings.Contains(err.Error(), bad.words) {
			t.Errorf("%+v: %v, want NotAllowedError naming %q", bad.r, err, bad.words)
		}
	}
}

func TestApply(t *testing.T) {
	served := &notificationv1.Receiver{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	apply(served, state{path: "/hook/abc"}, "https://hub.example/")
	if served.Status.WebhookPath != "/hook/abc" || served.Status.URL != "https://hub.example/hook/abc" || served.Status.ObservedGeneration != 3 ||
		!conditions.IsTrue(served, meta.ReadyCondition) {
		t.Errorf("ready status %+v", served.Status)
	}
	// A Receiver that goes bad loses its path, so the old one is no longer served.
	stalled := served.DeepCopy()
	stalled.Generation = 4
	apply(stalled, state{reason: notificationv1.ResourceNotAllowedReason, message: "outside"}, "https://hub.example")
	if stalled.Status.WebhookPath != "" || stalled.Status.URL != "" || stalled.Status.ObservedGeneration != 3 ||
		!conditions.IsTrue(stalled, meta.StalledCondition) || conditions.IsTrue(stalled, meta.ReadyCondition) {
		t.Errorf("stalled status %+v", stalled.Status)
	}
	noToken := served.DeepCopy()
	apply(noToken, state{reason: notificationv1.TokenNotFoundReason, message: "Secret team/hook not found"}, "")
	if c := conditions.Get(noToken, meta.ReadyCondition); noToken.Status.WebhookPath != "" || c.Status != metav1.ConditionFalse ||
		c.Reason != notificationv1.TokenNotFoundReason || conditions.IsTrue(noToken, meta.StalledCondition) {
		t.Errorf("no-token status %+v", noToken.Status)
	}
}
