package manager

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/artifact"
	fregistration "github.com/flotilla-dev/flotilla/api/registration"
	"github.com/flotilla-dev/flotilla/hub/artifactauth"
	"github.com/flotilla-dev/flotilla/hub/capi"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/hub/registration"
	"github.com/flotilla-dev/flotilla/hub/signing"
	"github.com/flotilla-dev/flotilla/hub/storage"
)

// artifactMux serves, on the artifact listener, the artifacts (guarded unless
// opts.AnonymousArtifacts) and the registration endpoint, and publishes where spokes reach
// the hub for `flotilla cluster add`.
func artifactMux(ctx context.Context, mgr ctrl.Manager, direct client.Client, store storage.Backend, baseURL string, caPEM []byte, keyring *signing.Keyring, opts Options) (*http.ServeMux, error) {
	server, caData := opts.HubServer, opts.HubCAData
	if server == "" {
		server = opts.Config.Host
	}
	if len(caData) == 0 {
		caData = opts.Config.CAData
		if len(caData) == 0 && opts.Config.CAFile != "" {
			b, err := os.ReadFile(opts.Config.CAFile)
			if err != nil {
				return nil, fmt.Errorf("hub CA: %w", err)
			}
			caData = b
		}
	}
	info := registration.HubInfo{
		Server:          server,
		CAData:          caData,
		RegistrationURL: strings.TrimSuffix(baseURL, "/") + fregistration.Path,
		RegistrationCA:  caPEM,
	}
	if err := registration.PublishHubInfo(ctx, direct, opts.SystemNamespace, info); err != nil {
		return nil, fmt.Errorf("publishing hub info: %w", err)
	}

	log := mgr.GetLogger()
	mux := http.NewServeMux()
	artifacts := store.Handler()
	if !opts.AnonymousArtifacts {
		// Grants are checked with this replica's keyring (kept current by the signing
		// controller or the follower); only a request without a valid grant reads
		// Assignments, so the cache's Assignment informer starts with the first such
		// request, not with the replica. A lookup counts only Assignments signed by
		// this keyring, as agents check them.
		artifacts = (&artifactauth.Guard{Reviewer: direct, Grants: keyring, Assignments: mgr.GetClient(), Live: mgr.GetAPIReader(),
			Trusted: keyring.PublicKeys, Log: log.WithName("artifactauth")}).Wrap(artifacts)
	}
	// Counted outside the guard, so that its 401 and 403 answers are counted too.
	mux.Handle(storage.PathPrefix, hubmetrics.CountServed(artifacts))
	mux.Handle(fregistration.Path, &registration.Server{
		Client:          direct,
		SystemNamespace: opts.SystemNamespace,
		HubServer:       server,
		HubCAData:       caData,
		ArtifactCA:      caPEM,
		ArtifactURL:     baseURL,
		TrustedKeys: func(context.Context) (string, error) {
			pem, err := artifact.MarshalPublicKeys(keyring.PublicKeys()...)
			return string(pem), err
		},
		Log: log.WithName("registration"),
	})
	return mux, nil
}

// setupClusterAPI registers Cluster API workload clusters automatically when the hub
// serves CAPI's v1beta2 Cluster; a hub without Cluster API does without. The check is
// made once, at start: installing Cluster API later needs a hub restart.
func setupClusterAPI(mgr ctrl.Manager, opts Options) error {
	if !capi.Available(mgr.GetRESTMapper()) {
		return nil
	}
	if err := capi.AddToScheme(mgr.GetScheme()); err != nil {
		return err
	}
	image := opts.AgentImage
	if image == "" {
		image = registration.DefaultAgentImage
	}
	mgr.GetLogger().Info("Cluster API found: workload clusters are registered automatically")
	return (&capi.Reconciler{
		Client:          mgr.GetClient(),
		Reader:          mgr.GetAPIReader(),
		SystemNamespace: opts.SystemNamespace,
		Image:           image,
		LabelKeys:       opts.CAPILabelKeys,
		Recorder:        mgr.GetEventRecorder("flotilla-capi"),
	}).SetupWithManager(mgr)
}
