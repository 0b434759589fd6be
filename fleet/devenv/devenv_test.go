package devenv_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
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

func TestControlPlaneKubeconfig(t *testing.T) {
	cp := env.StartControlPlane(t, "test-plane", true)
	path := filepath.Join(t.TempDir(), "kube", "config")
	if err := cp.WriteKubeconfig(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig: %v, mode %v; want 0600", err, fi.Mode())
	}
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if raw.CurrentContext != "test-plane" {
		t.Errorf("current context %q, want test-plane", raw.CurrentContext)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: api.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	// A Flotilla kind, through the written kubeconfig: the CRDs are installed and the
	// certificates work.
	ctx := context.Background()
	cl := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"env": "dev"}}}
	if err := c.Create(ctx, cl); err != nil {
		t.Fatal(err)
	}
	var got fleetv1.Cluster
	if err := cp.Client().Get(ctx, client.ObjectKey{Name: "a"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["env"] != "dev" {
		t.Errorf("labels %v", got.Labels)
	}
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cp.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
