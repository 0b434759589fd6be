package storage

import (
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestListAndUnreferenced(t *testing.T) {
	s, err := New(t.TempDir(), "http://x")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Put([]byte("a"))
	b, _ := s.Put([]byte("b"))
	c, _ := s.Put([]byte("c"))
	old := time.Now().Add(-time.Hour)
	for _, d := range []string{a, b} {
		p, _ := s.path(d)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	// Not an artifact: left alone.
	if err := os.WriteFile(s.Dir()+"/sha256/.tmp-1", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	stored, err := s.List()
	if err != nil || len(stored) != 3 {
		t.Fatalf("List: %v, %d", err, len(stored))
	}
	// b is kept by reference, c by being new, a goes.
	got := Unreferenced(stored, map[string]bool{b: true}, time.Now().Add(-time.Minute))
	if len(got) != 1 || got[0].Digest != a {
		t.Fatalf("unreferenced: %+v, want only %s", got, a)
	}
	// Storing a again makes it new: a controller is about to reference it.
	if _, err := s.Put([]byte("a")); err != nil {
		t.Fatal(err)
	}
	stored, _ = s.List()
	if got := Unreferenced(stored, map[string]bool{b: true}, time.Now().Add(-time.Minute)); len(got) != 0 {
		t.Fatalf("an artifact stored again was picked: %+v", got)
	}
	_ = c
}

func TestHistory(t *testing.T) {
	s, _ := New(t.TempDir(), "")
	h, err := s.LoadHistory()
	if err != nil || len(h) != 0 {
		t.Fatalf("empty history: %v %v", h, err)
	}
	for _, d := range []string{"d1", "d2", "d2", "d3", "d4"} {
		h.Record("GitRepository/default/app", d, 3)
	}
	h.Record("Kustomization/default/gone", "g1", 3)
	h.Forget(map[string]bool{"GitRepository/default/app": true})
	if err := s.SaveHistory(h); err != nil {
		t.Fatal(err)
	}
	back, err := s.LoadHistory()
	if err != nil {
		t.Fatal(err)
	}
	want := History{"GitRepository/default/app": {"d4", "d3", "d2"}}
	if diff := cmp.Diff(want, back); diff != "" {
		t.Fatal(diff)
	}
}
