package helm

import (
	"errors"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/source/outcome"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/repo"
)

func TestIndexURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://charts.example.com":         "https://charts.example.com/index.yaml",
		"https://charts.example.com/stable/": "https://charts.example.com/stable/index.yaml",
		"oci://registry.example.com/charts":  "",
		"charts.example.com":                 "",
	} {
		got, err := indexURL(raw)
		if want == "" {
			if err == nil {
				t.Errorf("indexURL(%q) = %q, want an error", raw, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("indexURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

func TestPickVersion(t *testing.T) {
	t.Parallel()
	idx := repo.NewIndexFile()
	for _, v := range []string{"6.5.0", "6.5.1", "6.6.0-rc.1", "7.0.0", "7.0.1+build.2"} {
		if err := idx.MustAdd(&chart.Metadata{APIVersion: "v2", Name: "podinfo", Version: v}, "podinfo-"+v+".tgz", "https://charts.example.com", ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, chart, rng, want string
		err                    error
	}{
		{"empty range is the newest stable", "podinfo", "", "7.0.1+build.2", nil},
		{"newest in range", "podinfo", "~6.5.0", "6.5.1", nil},
		{"prerelease when asked for", "podinfo", ">=6.6.0-0 <7", "6.6.0-rc.1", nil},
		{"a version by its name", "podinfo", "6.6.0-rc.1", "6.6.0-rc.1", nil},
		{"nothing in range", "podinfo", ">=8", "", ErrChartNotFound},
		{"no such chart", "other", "", "", ErrChartNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cv, err := pickVersion(idx, tc.chart, tc.rng)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || cv.Version != tc.want {
				t.Fatalf("pickVersion = %v, %v; want %s", cv, err, tc.want)
			}
		})
	}
	var f *outcome.Failure
	if _, err := pickVersion(idx, "podinfo", "not a range!"); !errors.As(err, &f) || f.Class != outcome.Stalled {
		t.Fatalf("an invalid range: %v, want a stalled failure", err)
	}
}

func TestParseIndex(t *testing.T) {
	t.Parallel()
	if _, err := parseIndex([]byte("apiVersion: v1\nentries: {}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := parseIndex([]byte("entries: {}\n")); err == nil {
		t.Fatal("an index without apiVersion was accepted")
	}
}

func TestPickTag(t *testing.T) {
	t.Parallel()
	tags := []string{"1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0_build.7", "latest"}
	for _, tc := range []struct{ rng, want string }{
		{"", "2.0.0+build.7"},
		{"~1.0", "1.0.0"},
		{"^1", "1.1.0"},
		{">=1.2.0-0 <2", "1.2.0-rc.1"},
		{"2.0.0+build.7", "2.0.0+build.7"},
		{"latest", "latest"},
	} {
		got, err := pickTag(tags, tc.rng)
		if err != nil || got != tc.want {
			t.Errorf("pickTag(%q) = %q, %v; want %q", tc.rng, got, err, tc.want)
		}
	}
	if _, err := pickTag(tags, ">=3"); !errors.Is(err, ErrChartNotFound) {
		t.Errorf("pickTag(>=3) = %v, want ErrChartNotFound", err)
	}
}
