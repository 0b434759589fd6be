package env

import (
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
	Log()
	opts := controlplane.Options{BinaryDir: Binaries(t)}
	if crds {
		var err error
		if opts.CRDs, err = controlplane.CRDs(); err != nil {
			t.Fatalf("decode CRDs: %v", err)
		}
	}
	cp, err := controlplane.Start(name, opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return cp
}
