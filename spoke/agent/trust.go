package agent

import (
	"context"
	"path/filepath"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/spoke/trust"
)

// agentTrust wires spoke/trust into the agent: the fetcher asks it for the keys at
// each fetch, and a change of keys makes the agent look again at every Assignment,
// so one that failed verification before a rotation reached it is retried at once.
type agentTrust struct {
	set     *trust.Set
	changed chan event.GenericEvent
}

// newAgentTrust opens the key set kept in the state folder, or starts from the keys
// handed over at registration.
func newAgentTrust(opts Options) (*agentTrust, error) {
	set, err := trust.Open(filepath.Join(opts.StateDir, trust.FileName), opts.TrustedKeys)
	if err != nil {
		return nil, err
	}
	return &agentTrust{set: set, changed: make(chan event.GenericEvent, 64)}, nil
}

// source feeds the Assignment controller the Assignments to look at again.
func (t *agentTrust) source() source.Source {
	return source.Channel(t.changed, &handler.EnqueueRequestForObject{})
}

// setup starts watching the trust bundle in the cluster's hub namespace.
func (t *agentTrust) setup(mgr ctrl.Manager, namespace string) error {
	c := mgr.GetClient()
	w := &trust.Watcher{
		Client:   c,
		Set:      t.set,
		Recorder: mgr.GetEventRecorder(FieldOwner),
		OnChange: func(ctx context.Context) {
			var list fleetv1.AssignmentList
			if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "listing Assignments to verify again")
				return
			}
			// Sent from a goroutine: the channel's reader may be busy, and the trust
			// controller should not wait for it.
			go func() {
				for i := range list.Items {
					select {
					case t.changed <- event.GenericEvent{Object: &list.Items[i]}:
					case <-ctx.Done():
						return
					}
				}
			}()
		},
	}
	return w.SetupWithManager(mgr)
}
