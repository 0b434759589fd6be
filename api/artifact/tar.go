package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// DefaultMaxSize bounds how many bytes an artifact may unpack to.
const DefaultMaxSize = 256 << 20

// epoch is the modification time of every entry, so that the same files always make
// the same bytes and so the same digest.
var epoch = time.Unix(0, 0).UTC()

// Digest returns sha256:<hex> of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Pack writes files (slash-separated relative path to content) as a deterministic tar.gz.
func Pack(files map[string][]byte) ([]byte, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		clean, err := cleanName(name)
		if err != nil {
			return nil, err
		}
		if clean != name {
			return nil, fmt.Errorf("artifact entry %q is not a clean relative path", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	for _, name := range names {
		data := files[name]
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadDir collects the regular files under dir, skipping what skip says to (skip gets
// the slash-separated relative path and whether it is a directory). A symbolic link
// is followed only when its target stays inside dir; one that leaves dir is an error.
// More than MaxFiles files or DefaultMaxSize bytes is an error too: what is packed
// must unpack on the other side.
func ReadDir(dir string, skip func(rel string, isDir bool) bool) (map[string][]byte, error) {
	var total int64
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		if skip != nil && skip(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("link %s: %w", rel, err)
			}
			if target != root && !strings.HasPrefix(target, root+string(filepath.Separator)) {
				return fmt.Errorf("link %s points outside the source (%s)", rel, target)
			}
			fi, err := os.Stat(target)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				return nil // the folder's files are reached through their real path
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		if len(files) >= MaxFiles {
			return fmt.Errorf("the source holds more than %d files", MaxFiles)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if total += int64(len(data)); total > DefaultMaxSize {
			return fmt.Errorf("the source is larger than %d bytes", DefaultMaxSize)
		}
		files[rel] = data
		return nil
	})
	return files, err
}

// ErrUnsafeEntry is returned for a tar entry that would land outside its folder.
var ErrUnsafeEntry = errors.New("unsafe artifact entry")

// MaxFiles bounds the number of files in one artifact: a tar of millions of empty
// files is small on the wire but not in memory.
const MaxFiles = 100_000

// Unpack reads a tar.gz into memory, refusing absolute paths, entries that climb out
// with "..", links of any kind, more than MaxFiles files and more than maxSize bytes
// in all.
func Unpack(r io.Reader, maxSize int64) (map[string][]byte, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("artifact is not gzip: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading artifact: %w", err)
		}
		if hdr.Typeflag == tar.TypeDir && path.Clean(hdr.Name) == "." {
			continue // the root folder entry some tools write ("./")
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return nil, err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%w: %q is a link or special file", ErrUnsafeEntry, hdr.Name)
		}
		if len(files) >= MaxFiles {
			return nil, fmt.Errorf("artifact holds more than %d files", MaxFiles)
		}
		total += hdr.Size
		if hdr.Size < 0 || total > maxSize {
			return nil, fmt.Errorf("artifact unpacks to more than %d bytes", maxSize)
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
		if err != nil {
			return nil, err
		}
		files[name] = data
	}
}

// WriteFiles writes files below dir, which must exist; names are checked again.
func WriteFiles(dir string, files map[string][]byte) error {
	for name, data := range files {
		clean, err := cleanName(name)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func cleanName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: %q", ErrUnsafeEntry, name)
	}
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: %q", ErrUnsafeEntry, name)
	}
	return clean, nil
}
