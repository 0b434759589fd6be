package signing

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// DefaultFollowInterval is how often a Follower reads the signing Secret.
const DefaultFollowInterval = 10 * time.Second

// Follower keeps the keyring of a hub replica that is not the leader in step with
// the Secret: the Controller, which reloads and publishes, runs on the leader only,
// but every replica answers registrations with the trusted keys. It never writes.
type Follower struct {
	Reader    client.Reader
	Keyring   *Keyring
	Namespace string
	// Interval between reads; DefaultFollowInterval when zero.
	Interval time.Duration
}

// NeedLeaderElection: a follower runs on every replica.
func (f *Follower) NeedLeaderElection() bool { return false }

// Start reads the Secret every Interval and takes a newer sequence of keys.
func (f *Follower) Start(ctx context.Context) error {
	interval := f.Interval
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st, err := Read(ctx, f.Reader, f.Namespace)
		if err != nil {
			log.FromContext(ctx).V(1).Info("signing keys not read", "error", err.Error())
			continue
		}
		if st.Sequence > f.Keyring.Sequence() {
			f.Keyring.Set(st)
		}
	}
}
