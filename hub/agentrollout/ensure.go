package agentrollout

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
)

// FieldOwner is the hub's server-side apply field manager of the AgentRollout: it
// owns spec.image and spec.version only, so an operator's placement and rollout stay.
const FieldOwner = "flotilla-hub"

// Offer returns the AgentRollout fields the hub owns for image: the image, and the
// version its agent reports (the image's tag; this hub's own version when the image
// has no tag, since a hub and the agent of its release share a version).
func Offer(image string) *unstructured.Unstructured {
	v := fleetv1.ImageTag(image)
	if v == "" {
		v = version.Version
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": fleetv1.GroupVersion.String(),
		"kind":       fleetv1.AgentRolloutKind,
		"metadata":   map[string]any{"name": fleetv1.AgentRolloutName},
		"spec":       map[string]any{"image": image, "version": v},
	}}
	return u
}

// Ensure writes the AgentRollout's image and version (Offer), creating it when
// missing, so that upgrading the hub offers its agent to every cluster. It retries
// until it succeeds or ctx ends, and never fails the hub: a hub whose API server does
// not serve AgentRollouts yet (CRDs older than the hub) keeps running and says so.
func Ensure(ctx context.Context, c client.Client, image string, log logr.Logger) {
	delay := time.Second
	for {
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(Offer(image)), client.FieldOwner(FieldOwner), client.ForceOwnership)
		if err == nil {
			log.Info("offered the agent to the fleet", "image", image)
			return
		}
		log.Error(err, "writing the AgentRollout; retrying", "image", image, "retryAfter", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}
