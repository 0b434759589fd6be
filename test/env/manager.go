package env

import (
	"context"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/flotilla-dev/flotilla/api"
)

// StartManager runs a controller-runtime manager on cfg with the Flotilla scheme,
// metrics and probes off, once setup has registered its controllers on it, and stops
// it when the test ends. Several managers may share a process: controller names are
// not checked for uniqueness.
func StartManager(t testing.TB, cfg *rest.Config, setup func(ctrl.Manager) error) ctrl.Manager {
	t.Helper()
	Log()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 api.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	if err := setup(mgr); err != nil {
		t.Fatalf("manager setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return mgr
}
