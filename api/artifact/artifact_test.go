package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPackIsDeterministicAndRoundTrips(t *testing.T) {
	files := map[string][]byte{"b/x.yaml": []byte("x: 1\n"), "a.yaml": []byte("a: 2\n")}
	one, err := Pack(files)
	if err != nil {
		t.Fatal(err)
	}
	two, _ := Pack(map[string][]byte{"a.yaml": []byte("a: 2\n"), "b/x.yaml": []byte("x: 1\n")})
	if Digest(one) != Digest(two) {
		t.Fatal("same files packed to different digests")
	}
	got, err := Unpack(bytes.NewReader(one), 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, got); diff != "" {
		t.Fatal(diff)
	}
}

func TestPackRefusesUnsafeNames(t *testing.T) {
	for _, name := range []string{"../x", "/etc/passwd", "a/../../x", "./a", ""} {
		if _, err := Pack(map[string][]byte{name: nil}); err == nil {
			t.Errorf("Pack accepted %q", name)
		}
	}
}

func rawTar(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestUnpackRefusesEscapes(t *testing.T) {
	for name, h := range map[string]*tar.Header{
		"dotdot":   {Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"nested":   {Name: "a/../../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"absolute": {Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"symlink":  {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		"hardlink": {Name: "hard", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Unpack(bytes.NewReader(rawTar(t, h)), 0)
			if !errors.Is(err, ErrUnsafeEntry) {
				t.Fatalf("want ErrUnsafeEntry, got %v", err)
			}
		})
	}
}

func TestUnpackAcceptsRootFolderEntry(t *testing.T) {
	data := rawTar(t,
		&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "./app.yaml", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644})
	files, err := Unpack(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(files["app.yaml"]) != 3 {
		t.Fatalf("files %v", files)
	}
}

func TestUnpackSizeLimit(t *testing.T) {
	data := rawTar(t, &tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: 2048, Mode: 0o644})
	if _, err := Unpack(bytes.NewReader(data), 1024); err == nil {
		t.Fatal("want a size error")
	}
}

func TestReadDirRefusesLinkOut(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
	os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte("ok"), 0o600)
	if _, err := ReadDir(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "leak")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDir(dir, nil); err == nil {
		t.Fatal("ReadDir followed a link out of its folder")
	}
}

func TestSignVerifyWithRotation(t *testing.T) {
	oldKey, _ := GenerateKey()
	newKey, _ := GenerateKey()
	data := []byte("artifact")
	d := Digest(data)
	sigOld, sigNew := Sign(oldKey, d), Sign(newKey, d)
	both := []ed25519.PublicKey{oldKey.Public().(ed25519.PublicKey), newKey.Public().(ed25519.PublicKey)}
	for _, sig := range []string{sigOld, sigNew} {
		if err := Verify(data, d, sig, both); err != nil {
			t.Fatalf("trusted signature refused: %v", err)
		}
	}
	if err := Verify(data, d, sigOld, both[1:]); !errors.Is(err, ErrSignature) {
		t.Fatalf("removed key still verifies: %v", err)
	}
	if err := Verify([]byte("tampered"), d, sigNew, both); err == nil {
		t.Fatal("tampered content verified")
	}
	pem, _ := MarshalPublicKeys(both...)
	parsed, err := ParsePublicKeys(pem)
	if err != nil || len(parsed) != 2 {
		t.Fatalf("parse: %v %d", err, len(parsed))
	}
	privPEM, _ := MarshalPrivateKey(newKey)
	back, err := ParsePrivateKey(privPEM)
	if err != nil || !back.Equal(newKey) {
		t.Fatalf("private key round trip: %v", err)
	}
}
