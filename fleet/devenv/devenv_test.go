package devenv_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
)

func TestCRDs(t *testing.T) {
	crds, err := controlplane.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range crds {
		names = append(names, c.Name)
	}
	for _, want := range []string{"clusters.fleet.flotilla.dev", "kustomizations.delivery.flotilla.dev", "gitrepositories.source.flotilla.dev"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("CRD %s missing from %v", want, names)
		}
	}
}

func TestFindBinaries(t *testing.T) {
	full := t.TempDir()
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if err := os.WriteFile(filepath.Join(full, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()

	t.Setenv(controlplane.KubebuilderEnv, empty)
	t.Setenv(controlplane.ControlPlaneEnv, full)
	if dir, err := controlplane.FindBinaries(); err != nil || dir != full {
		t.Errorf("FLOTILLA_CONTROL_PLANE first: got %q, %v; want %q", dir, err, full)
	}

	t.Setenv(controlplane.ControlPlaneEnv, "")
	_, err := controlplane.FindBinaries()
	if !errors.Is(err, controlplane.ErrBinariesNotFound) || !strings.Contains(err.Error(), "make control-plane") {
		t.Errorf("a folder without binaries: got %v, want an error naming make control-plane", err)
	}
}
