package manager

import (
	"context"
	"crypto/ed25519"
	"errors"
)

// Hub is a running hub.
type Hub struct {
	baseURL string
	keys    []ed25519.PublicKey
	done    chan struct{}
	err     error
}

// ArtifactBaseURL is where spokes download artifacts from.
func (h *Hub) ArtifactBaseURL() string { return h.baseURL }

// PublicKeys are the keys agents must trust to verify this hub's artifacts.
func (h *Hub) PublicKeys() []ed25519.PublicKey { return h.keys }

// Done is closed when the hub has stopped; Err then says why.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Err is the reason the hub stopped, nil when its context was cancelled.
func (h *Hub) Err() error { return h.err }

// Start starts a hub and returns once its controllers and artifact server run; it
// stops when ctx is cancelled.
func Start(ctx context.Context, opts Options) (*Hub, error) {
	return nil, errors.New("not implemented yet")
}

// Run starts a hub and blocks until it stops.
func Run(ctx context.Context, opts Options) error {
	h, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	<-h.Done()
	return h.Err()
}
