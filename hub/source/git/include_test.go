package git

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

func TestIncludePaths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		from, to         string
		wantFrom, wantTo string
		wantErr          string
	}{
		{"", "", "", "lib", ""},
		{"base/", "/shared/base/", "base", "shared/base", ""},
		{"./a/./b", "c//d", "a/b", "c/d", ""},
		{"../x", "y", "", "", "fromPath \"../x\" leaves the artifact"},
		{"", "a/../../etc", "", "", "toPath \"a/../../etc\" leaves the artifact"},
		{"", "/", "", "", "the artifact's root"},
	} {
		inc := sourcev1.GitRepositoryInclude{Repository: meta.LocalObjectReference{Name: "lib"}, FromPath: tc.from, ToPath: tc.to}
		from, to, err := includePaths(inc)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q→%q: error %v, want %q", tc.from, tc.to, err, tc.wantErr)
			}
			continue
		}
		if err != nil || from != tc.wantFrom || to != tc.wantTo {
			t.Errorf("%q→%q: got %q, %q, %v; want %q, %q", tc.from, tc.to, from, to, err, tc.wantFrom, tc.wantTo)
		}
	}
}

func TestCopyTree(t *testing.T) {
	t.Parallel()
	dst := map[string][]byte{"app.yaml": []byte("a"), "shared/old.yaml": []byte("old"), "sharedx/keep.yaml": []byte("k")}
	src := map[string][]byte{"base/cm.yaml": []byte("cm"), "base/sub/x.yaml": []byte("x"), "README.md": []byte("r"), "basement/no.yaml": []byte("n")}
	if n := copyTree(dst, src, "base", "shared"); n != 2 {
		t.Fatalf("copied %d files, want 2", n)
	}
	want := map[string]string{"app.yaml": "a", "sharedx/keep.yaml": "k", "shared/cm.yaml": "cm", "shared/sub/x.yaml": "x"}
	got := map[string]string{}
	for k, v := range dst {
		got[k] = string(v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}
}
