package env

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
)

// LogEnv turns on the logs of the hub, the agents and the harness: FLOTILLA_TEST_LOG=0
// shows info records, 1 and more add logr's V(1)… records.
const LogEnv = "FLOTILLA_TEST_LOG"

var (
	logOnce sync.Once
	logger  logr.Logger
)

// Log is the harness's logger, also installed as controller-runtime's global logger.
// It drops everything unless FLOTILLA_TEST_LOG is set.
func Log() logr.Logger {
	logOnce.Do(func() {
		logger = logr.Discard()
		if v, ok := os.LookupEnv(LogEnv); ok {
			n, _ := strconv.Atoi(v)
			logger = controlplane.NewLogger(os.Stderr, n)
		}
		// Without a global logger, controller-runtime complains after 30s.
		ctrllog.SetLogger(logger)
	})
	return logger
}

// StartControlPlane starts one API server with the Flotilla CRDs installed (or none,
// when crds is false) and stops it when the test ends.
func StartControlPlane(t testing.TB, name string, crds bool) *controlplane.ControlPlane {
	t.Helper()
	return StartControlPlanes(t, Plane{Name: name, CRDs: crds})[0]
}

// Plane names a control plane for StartControlPlanes.
type Plane struct {
	Name string
	// CRDs installs the Flotilla CRDs.
	CRDs bool
}

// StartControlPlanes starts several control planes at once, in the order given, and
// stops them when the test ends.
func StartControlPlanes(t testing.TB, planes ...Plane) []*controlplane.ControlPlane {
	t.Helper()
	Log()
	dir := Binaries(t)
	cps := make([]*controlplane.ControlPlane, len(planes))
	errs := make([]error, len(planes))
	var wg sync.WaitGroup
	for i, p := range planes {
		wg.Go(func() {
			opts := controlplane.Options{BinaryDir: dir}
			if p.CRDs {
				if opts.CRDs, errs[i] = controlplane.CRDs(); errs[i] != nil {
					return
				}
			}
			cps[i], errs[i] = controlplane.Start(p.Name, opts)
		})
	}
	wg.Wait()
	for _, cp := range cps {
		if cp != nil {
			t.Cleanup(func() {
				if err := cp.Stop(); err != nil {
					t.Errorf("%v", err)
				}
			})
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%v", err)
	}
	return cps
}
