package artifact

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzUnpack feeds arbitrary bytes to Unpack: it must never panic, and whatever it
// accepts must be safe to write below a folder and within the size limit.
func FuzzUnpack(f *testing.F) {
	packed, err := Pack(map[string][]byte{"a/manifests.yaml": []byte("kind: ConfigMap\n"), "b.txt": nil})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(packed)
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte("not gzip"))
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := Unpack(bytes.NewReader(data), limit)
		if err != nil {
			return
		}
		var total int
		for name, content := range files {
			clean, err := cleanName(name)
			if err != nil || clean != name {
				t.Fatalf("accepted unsafe name %q", name)
			}
			if strings.HasPrefix(name, "../") || strings.HasPrefix(name, "/") || name == ".." {
				t.Fatalf("accepted escaping name %q", name)
			}
			total += len(content)
		}
		if total > limit {
			t.Fatalf("unpacked %d bytes over the %d limit", total, limit)
		}
	})
}

// FuzzPackRoundTrip: what Pack writes, Unpack reads back unchanged, and the digest
// depends on the content alone.
func FuzzPackRoundTrip(f *testing.F) {
	f.Add("dir/file.yaml", []byte("a: 1\n"), "other", []byte{})
	f.Fuzz(func(t *testing.T, n1 string, d1 []byte, n2 string, d2 []byte) {
		in := map[string][]byte{n1: d1, n2: d2}
		packed, err := Pack(in)
		if err != nil {
			return // unsafe names are refused on the way in too
		}
		again, err := Pack(in)
		if err != nil || Digest(again) != Digest(packed) {
			t.Fatalf("packing twice gave different digests")
		}
		out, err := Unpack(bytes.NewReader(packed), 0)
		if err != nil {
			t.Fatalf("unpacking what Pack wrote: %v", err)
		}
		for name, data := range in {
			clean, _ := cleanName(name)
			if !bytes.Equal(out[clean], data) {
				t.Fatalf("%q changed in the round trip", name)
			}
		}
	})
}
