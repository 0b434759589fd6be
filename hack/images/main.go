// Command images builds Flotilla's container images as OCI layouts, without a
// container engine (`make images`), and pushes them to a registry (`make push`).
//
//	go run ./hack/images build -out bin/images -version v0.3.0 [-platforms linux/amd64,linux/arm64]
//	go run ./hack/images push -from bin/images -registry registry.example.com/flotilla
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flotilla-dev/flotilla/fleet/images"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: images build|push [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "push":
		err = push(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: build or push", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	out := fs.String("out", "bin/images", "folder of the OCI layouts, one per image")
	version := fs.String("version", "dev", "version linked into the binaries and tag of the images")
	revision := fs.String("revision", "", "Git commit of the sources")
	created := fs.Int64("created", 0, "creation time, Unix seconds (default 0, for reproducible digests; make passes the commit time)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	caBundle := fs.String("ca-bundle", images.DefaultCABundle, "PEM CA bundle put into the images")
	_ = fs.Parse(args)
	ps, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(*caBundle)
	if err != nil {
		return fmt.Errorf("CA bundle: %w", err)
	}
	opts := images.Options{Version: *version, Revision: *revision, Created: time.Unix(*created, 0), Platforms: ps, CABundle: ca}
	tag := images.Tag(*version)
	for _, img := range images.All {
		began := time.Now()
		idx, err := images.Build(context.Background(), img, opts)
		if err != nil {
			return err
		}
		dir := images.LayoutDir(*out, img)
		if err := images.WriteLayout(dir, tag, idx); err != nil {
			return err
		}
		d, _ := idx.Digest()
		fmt.Printf("%s:%s %s (%s) -> %s in %s\n", img.Name, tag, d, *platforms, dir, time.Since(began).Round(time.Second))
	}
	return nil
}

func push(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	from := fs.String("from", "bin/images", "folder of the OCI layouts `make images` wrote")
	registry := fs.String("registry", "", "registry and repository prefix, e.g. registry.example.com/flotilla (required)")
	_ = fs.Parse(args)
	if *registry == "" {
		return fmt.Errorf("-registry is required (make push REGISTRY=host/repo)")
	}
	for _, img := range images.All {
		idx, tag, err := images.ReadLayout(images.LayoutDir(*from, img))
		if err != nil {
			return fmt.Errorf("%w (run make images first)", err)
		}
		ref := strings.TrimSuffix(*registry, "/") + "/" + img.Name + ":" + tag
		d, err := images.Push(context.Background(), ref, idx)
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s@%s\n", ref, d)
	}
	return nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var ps []v1.Platform
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		ps = append(ps, *pl)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no platform given")
	}
	return ps, nil
}
