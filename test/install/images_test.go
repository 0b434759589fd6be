package install

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/flotilla-dev/flotilla/fleet/images"
	"github.com/flotilla-dev/flotilla/test/registry"
)

// FullImagesEnv builds the real hub and agent images for both platforms in
// TestImagesRoundTrip (minutes on two cores); by default a small program stands in
// for them, through exactly the same build, so the test takes seconds.
const FullImagesEnv = "FLOTILLA_TEST_FULL_IMAGES"

// TestImagesRoundTrip builds multi-platform images, writes and reads their OCI
// layout, pushes them to a real registry, pulls them back and checks what a
// container runtime reads: platforms, entrypoint, user, labels, the CA bundle, and
// that the binary is the one built, with its version linked in.
func TestImagesRoundTrip(t *testing.T) {
	reg := registry.New(t)
	imgs := []images.Image{{Name: "hello", Package: "./test/install/testdata/hello"}}
	if os.Getenv(FullImagesEnv) != "" {
		imgs = images.All
	}
	const version = "v0.0.0-test.1"
	opts := images.Options{
		Dir:      filepath.Join("..", ".."),
		Version:  version,
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Created:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		CABundle: []byte("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"),
		WorkDir:  t.TempDir(),
	}
	ctx := context.Background()
	for _, img := range imgs {
		began := time.Now()
		idx, err := images.Build(ctx, img, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s built for %d platforms in %s", img.Name, len(images.DefaultPlatforms), time.Since(began).Round(time.Millisecond))
		// Through the layout `make images` writes and `make push` reads.
		dir := images.LayoutDir(t.TempDir(), img)
		if err := images.WriteLayout(dir, images.Tag(version), idx); err != nil {
			t.Fatal(err)
		}
		fromLayout, tag, err := images.ReadLayout(dir)
		if err != nil {
			t.Fatal(err)
		}
		if tag != version {
			t.Errorf("layout tag %q, want %q", tag, version)
		}
		ref := reg.Host() + "/flotilla/" + img.Name + ":" + tag
		pushed, err := images.Push(ctx, ref, fromLayout, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		built, _ := idx.Digest()
		if pushed != built {
			t.Errorf("pushed digest %s, built %s: the layout changed the index", pushed, built)
		}
		checkPulled(t, ref, img, opts, pushed)
	}
}

func checkPulled(t *testing.T, ref string, img images.Image, opts images.Options, digest v1.Hash) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if d, _ := idx.Digest(); d != digest {
		t.Errorf("pulled index %s, pushed %s", d, digest)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, desc := range m.Manifests {
		platforms = append(platforms, desc.Platform.String())
	}
	slices.Sort(platforms)
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("index platforms %v, want %v", platforms, want)
	}
	for _, desc := range m.Manifests {
		image, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := image.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		p := desc.Platform.String()
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
		if want := []string{images.BinaryPath(img)}; !slices.Equal(cf.Config.Entrypoint, want) {
			t.Errorf("%s: entrypoint %v, want %v", p, cf.Config.Entrypoint, want)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", p, cf.Config.User)
		}
		for k, v := range map[string]string{
			images.LabelVersion:  opts.Version,
			images.LabelRevision: opts.Revision,
			images.LabelSource:   images.DefaultSource,
			images.LabelTitle:    img.Name,
		} {
			if got := cf.Config.Labels[k]; got != v {
				t.Errorf("%s: label %s=%q, want %q", p, k, got, v)
			}
		}
		files := imageFiles(t, image)
		if string(files["etc/ssl/certs/ca-certificates.crt"]) != string(opts.CABundle) {
			t.Errorf("%s: the CA bundle is not the one given", p)
		}
		if _, ok := files["etc/passwd"]; !ok {
			t.Errorf("%s: no /etc/passwd", p)
		}
		bin := files[images.BinaryPath(img)[1:]]
		if len(bin) == 0 {
			t.Fatalf("%s: no %s in the image", p, images.BinaryPath(img))
		}
		if p == runtime.GOOS+"/"+runtime.GOARCH {
			checkBinary(t, img, bin, opts.Version)
		}
	}
}

// imageFiles reads every regular file of an image's layers.
func imageFiles(t *testing.T, image v1.Image) map[string][]byte {
	t.Helper()
	layers, err := image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				files[h.Name] = b
			}
		}
		rc.Close()
	}
	return files
}

// checkBinary runs the binary pulled for this machine's platform and checks the
// version linked into it.
func checkBinary(t *testing.T, img images.Image, bin []byte, version string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), img.Name)
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{}
	if img.Name != "hello" {
		args = append(args, "--version")
	}
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		t.Fatalf("run %s from the image: %v", img.Name, err)
	}
	if got := string(out); got != version+"\n" {
		t.Errorf("%s from the image prints version %q, want %q", img.Name, got, version)
	}
}
