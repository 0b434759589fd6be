package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one program to package.
type Image struct {
	// Name of the image and of the binary, e.g. flotilla-hub.
	Name string
	// Package is the Go main package, relative to Options.Dir, e.g. ./hub/cmd/flotilla-hub.
	Package string
	// Title is the image's org.opencontainers.image.title; Name when empty.
	Title string
	// Tags are Go build tags of the binary.
	Tags []string
}

// Flotilla's images.
var (
	Hub   = Image{Name: "flotilla-hub", Package: "./hub/cmd/flotilla-hub"}
	Agent = Image{Name: "flotilla-agent", Package: "./spoke/cmd/flotilla-agent"}
	// AgentKMS is the agent with SOPS key services (Vault transit, AWS/GCP KMS,
	// Azure Key Vault) linked in: build tag sopskms, see spoke/sops.
	AgentKMS = Image{Name: "flotilla-agent-kms", Package: "./spoke/cmd/flotilla-agent", Tags: []string{"sopskms"}}
)

// All is every image `make images` builds.
var All = []Image{Hub, Agent, AgentKMS}

// DefaultPlatforms are the platforms of the released images.
var DefaultPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// DefaultCABundle is where Debian and most distributions keep the system's CA
// bundle, the file Go's crypto/x509 reads on Linux.
const DefaultCABundle = "/etc/ssl/certs/ca-certificates.crt"

// UID and GID the programs run as (the "nonroot" user of distroless images).
const UID = 65532

// Label keys (OCI image annotations, used as image config labels).
const (
	LabelVersion  = "org.opencontainers.image.version"
	LabelRevision = "org.opencontainers.image.revision"
	LabelSource   = "org.opencontainers.image.source"
	LabelTitle    = "org.opencontainers.image.title"
	LabelCreated  = "org.opencontainers.image.created"
)

// Options of a build.
type Options struct {
	// Dir is the module's root; the working directory when empty.
	Dir string
	// Version is linked into the binary (api/version) and labels the image.
	Version string
	// Revision is the Git commit the image is built from.
	Revision string
	// Source is the repository's URL.
	Source string
	// Created is the images' creation time; the Unix epoch when zero, so that the
	// same sources give the same digests.
	Created time.Time
	// Platforms to build; DefaultPlatforms when empty.
	Platforms []v1.Platform
	// CABundle is the PEM bundle the programs trust for Git, Helm and OCI servers;
	// read from DefaultCABundle when nil.
	CABundle []byte
	// WorkDir receives the binaries; a temporary folder, removed afterwards, when empty.
	WorkDir string
	// Go is the go command; "go" from PATH when empty.
	Go string
}

// DefaultSource is the repository the images are labelled with.
const DefaultSource = "https://github.com/flotilla-dev/flotilla"

// Build compiles img for every platform and returns the multi-platform index.
func Build(ctx context.Context, img Image, opts Options) (v1.ImageIndex, error) {
	if len(opts.Platforms) == 0 {
		opts.Platforms = DefaultPlatforms
	}
	if opts.Version == "" {
		return nil, errors.New("a version is required")
	}
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.CABundle == nil {
		b, err := os.ReadFile(DefaultCABundle)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w (install ca-certificates, or give one)", err)
		}
		opts.CABundle = b
	}
	work := opts.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "flotilla-images-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		work = d
	}
	base, err := baseLayer(opts.CABundle, opts.Created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, p := range opts.Platforms {
		bin := filepath.Join(work, p.OS+"_"+p.Architecture, img.Name)
		if err := compile(ctx, img, p, bin, opts); err != nil {
			return nil, err
		}
		image, err := platformImage(img, p, bin, base, opts)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: image, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, labels(img, opts)).(v1.ImageIndex), nil
}

// compile builds a static binary for one platform.
func compile(ctx context.Context, img Image, p v1.Platform, out string, opts Options) error {
	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	ldflags := "-s -w -X github.com/flotilla-dev/flotilla/api/version.Version=" + opts.Version
	args := []string{"build", "-trimpath", "-ldflags", ldflags, "-o", out}
	if len(img.Tags) > 0 {
		args = append(args, "-tags", strings.Join(img.Tags, ","))
	}
	cmd := exec.CommandContext(ctx, goCmd, append(args, img.Package)...)
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w\n%s", img.Package, p.OS, p.Architecture, err, stderr.String())
	}
	return nil
}

// BinaryPath is where the program lives in its image.
func BinaryPath(img Image) string { return "/usr/local/bin/" + img.Name }

func platformImage(img Image, p v1.Platform, bin string, base v1.Layer, opts Options) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	app, err := layer(opts.Created, []entry{{name: BinaryPath(img), mode: 0o755, data: data}})
	if err != nil {
		return nil, err
	}
	image := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	image = mutate.ConfigMediaType(image, types.OCIConfigJSON)
	image, err = mutate.AppendLayers(image, base, app)
	if err != nil {
		return nil, err
	}
	cf, err := image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: opts.Created.UTC()}
	cf.Author = opts.Source
	cf.Config.Entrypoint = []string{BinaryPath(img)}
	cf.Config.User = fmt.Sprintf("%d:%d", UID, UID)
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "HOME=/tmp"}
	cf.Config.Labels = labels(img, opts)
	image, err = mutate.ConfigFile(image, cf)
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(image, v1.Time{Time: opts.Created.UTC()})
}

func labels(img Image, opts Options) map[string]string {
	title := img.Title
	if title == "" {
		title = img.Name
	}
	l := map[string]string{
		LabelVersion: opts.Version,
		LabelSource:  opts.Source,
		LabelTitle:   title,
		LabelCreated: opts.Created.UTC().Format(time.RFC3339),
	}
	if opts.Revision != "" {
		l[LabelRevision] = opts.Revision
	}
	return l
}

// baseLayer is what distroless "static" images hold and the programs need: a
// nonroot user and group (for tools that look a UID up), a CA bundle, and /tmp.
func baseLayer(caBundle []byte, created time.Time) (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, UID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)
	return layer(created, []entry{
		{name: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "/etc/group", mode: 0o644, data: []byte(group)},
		{name: "/etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: caBundle},
		{name: "/home/nonroot", mode: 0o700, dir: true, uid: UID},
		{name: "/tmp", mode: 0o1777, dir: true},
	})
}

type entry struct {
	name string
	mode int64
	data []byte
	dir  bool
	uid  int
}

// layer packs entries (and their parent folders) as a gzipped tar with fixed times
// and owners, so that the same input gives the same digest.
func layer(created time.Time, entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{}
	mtime := created.UTC()
	var addDir func(string) error
	addDir = func(d string) error {
		if d == "." || d == "/" || d == "" || dirs[d] {
			return nil
		}
		if err := addDir(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	}
	for _, e := range entries {
		if err := addDir(path.Dir(e.name)); err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(e.name, "/")
		if e.dir {
			dirs[e.name] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: e.mode, Size: int64(len(e.data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return static.NewLayer(buf.Bytes(), types.OCILayer), nil
}
