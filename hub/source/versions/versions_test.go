package versions

import (
	"errors"
	"testing"

	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/source/outcome"
)

func TestNewest(t *testing.T) {
	t.Parallel()
	tags := []string{"v1.0.0", "1.0.0", "v1.2.0", "v1.10.0", "v2.0.0-rc.1", "v2.0.0", "latest", "v3.0.0-beta"}
	for _, tc := range []struct {
		rng  string
		tags []string
		want string
	}{
		{"~1.0", tags, "v1.0.0"}, // of v1.0.0 and 1.0.0 the name sorting last
		{"^1", tags, "v1.10.0"},
		{">=1", tags, "v2.0.0"},
		{"1.2.x", tags, "v1.2.0"},
		{">=2.0.0-0 <2.0.0", tags, "v2.0.0-rc.1"},
		{">=4", tags, ""},
		{"*", tags, "v2.0.0"}, // no prereleases unless asked for
		{"^1.0.0", []string{"latest", "1.0.0", "v1.4.0", "1.10.0-rc.1", "1.9.2", "2.0.0"}, "1.9.2"},
		{"~6.5.0", []string{"6.6.0", "6.5.1", "6.5.0"}, "6.5.1"},
		{"^1", []string{"latest"}, ""},
		{"^1", nil, ""},
	} {
		c, err := Range(tc.rng)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := Newest(tc.tags, c)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("Newest(%v, %q) = %q %v, want %q", tc.tags, tc.rng, got, ok, tc.want)
		}
	}
}

func TestRangeInvalidStalls(t *testing.T) {
	t.Parallel()
	_, err := Range("not a range")
	var f *outcome.Failure
	if !errors.As(err, &f) || f.Class != outcome.Stalled || f.Reason != sourcev1.InvalidSemVerReason {
		t.Fatalf("Range(bad) = %v, want Stalled/%s", err, sourcev1.InvalidSemVerReason)
	}
}
