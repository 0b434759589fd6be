package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/api/artifact"
	"github.com/flotilla-dev/flotilla/spoke/agent"
)

// DefaultCheckInterval is how often Run asks the hub whether it still accepts the
// credential.
const DefaultCheckInterval = 30 * time.Second

// RunOptions configure Run.
type RunOptions struct {
	Options
	// Agent is the agent's configuration; Run fills in the cluster name, hub
	// configuration and namespace from the credential, and the trusted keys unless
	// Agent has some.
	Agent agent.Options
	// CheckInterval between credential checks; DefaultCheckInterval when zero.
	CheckInterval time.Duration
}

// Run registers when needed and runs the agent until ctx ends. When the hub answers
// 401 to the credential (revoked or rotated), it stops the agent, forgets the
// credential and registers again with whatever bootstrap token the spoke then holds,
// waiting for a new one while the old one is refused.
func Run(ctx context.Context, opts RunOptions) error {
	opts.complete()
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	log := opts.Log
	for wait := time.Second; ; {
		cred, err := Obtain(ctx, opts.Options)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error(err, "cannot get a hub credential, trying again", "in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			wait = min(2*wait, 15*time.Second)
			continue
		}
		wait = time.Second
		refused, err := runWith(ctx, opts, cred)
		if err != nil || !refused {
			return err
		}
		log.Info("the hub refuses the credential; registering again", "cluster", cred.Cluster)
		if err := Forget(ctx, opts.Options, cred); err != nil {
			return fmt.Errorf("forget the refused credential: %w", err)
		}
	}
}

// runWith runs the agent with cred until ctx ends (nil), the agent fails (its
// error), or the hub refuses cred (refused).
func runWith(ctx context.Context, opts RunOptions, cred *Credential) (refused bool, err error) {
	ao := opts.Agent
	ao.ClusterName = cred.Cluster
	ao.HubNamespace = cred.Namespace
	ao.HubConfig = cred.RESTConfig()
	if len(ao.ArtifactCA) == 0 {
		ao.ArtifactCA = cred.ArtifactCA
	}
	if ao.ArtifactURL == "" {
		ao.ArtifactURL = cred.ArtifactURL
	}
	// Keys set by the caller win: a test (or an air-gapped install) may pin its own.
	if len(ao.TrustedKeys) == 0 && len(cred.TrustedKeys) > 0 {
		keys, err := artifact.ParsePublicKeys(cred.TrustedKeys)
		if err != nil {
			return false, fmt.Errorf("trusted keys from the hub: %w", err)
		}
		ao.TrustedKeys = keys
	}
	cs, err := kubernetes.NewForConfig(cred.RESTConfig())
	if err != nil {
		return false, err
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- agent.Run(actx, ao) }()

	tick := time.NewTicker(opts.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return false, nil
			}
			if err == nil {
				err = errors.New("the agent stopped")
			}
			return false, err
		case <-tick.C:
			// A SelfSubjectReview needs no permission: only a credential the hub no
			// longer accepts fails it, with 401.
			_, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if apierrors.IsUnauthorized(err) {
				cancel()
				<-done
				return true, nil
			}
			if err != nil && ctx.Err() == nil {
				opts.Log.V(1).Info("credential check failed", "err", err.Error())
			}
		}
	}
}
