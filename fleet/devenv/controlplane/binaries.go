package controlplane

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Module is the Go module path of this repository, used to recognise a checkout.
const Module = "github.com/flotilla-dev/flotilla"

// Environment variables naming the folder of the control-plane binaries, in order of
// precedence.
const (
	ControlPlaneEnv = "FLOTILLA_CONTROL_PLANE"
	KubebuilderEnv  = "KUBEBUILDER_ASSETS"
)

// ErrBinariesNotFound says the control-plane binaries are missing and how to get them.
var ErrBinariesNotFound = errors.New("control-plane binaries not found: run `make control-plane`")

// requiredBinaries are what envtest runs; kube-controller-manager and kwok are optional.
var requiredBinaries = []string{"etcd", "kube-apiserver", "kubectl"}

// FindBinaries returns the folder holding etcd, kube-apiserver and kubectl: the one
// named by FLOTILLA_CONTROL_PLANE, else by KUBEBUILDER_ASSETS, else the cache that
// `make control-plane` fills when running inside a checkout.
func FindBinaries() (string, error) {
	for _, env := range []string{ControlPlaneEnv, KubebuilderEnv} {
		if dir := os.Getenv(env); dir != "" {
			if err := checkBinaries(dir); err != nil {
				return "", fmt.Errorf("%s=%s: %w", env, dir, err)
			}
			return dir, nil
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return "", ErrBinariesNotFound
	}
	dir := filepath.Join(root, ".cache", "control-plane", "current")
	if err := checkBinaries(dir); err != nil {
		return "", ErrBinariesNotFound
	}
	// Resolved, so that a rebuild moving the symlink does not change a running fleet.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return dir, nil
}

func checkBinaries(dir string) error {
	for _, b := range requiredBinaries {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is missing: %w", b, ErrBinariesNotFound)
		}
	}
	return nil
}

// RepoRoot walks up from the working directory to the go.mod of this module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isOurModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside a checkout of %s", Module)
		}
		dir = parent
	}
}

func isOurModule(goMod string) bool {
	f, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); strings.HasPrefix(line, "module ") {
			return strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "module ")), `"`) == Module
		}
	}
	return false
}
