package helmrelease

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/tenancy"
)

func TestMergeValues(t *testing.T) {
	objects := map[string]valuesObject{
		"ConfigMap/base": {"values.yaml": []byte("a: 1\nm:\n  x: 1\n  k: 1\nl: [1, 2]\n"), "replicas": []byte("3\n")},
		"Secret/creds":   {"values.yaml": []byte("m:\n  k: 2\n  z: 2\n"), "password": []byte(`p,a\ss=1`)},
		"Secret/empty":   {},
	}
	for _, tc := range []struct {
		name   string
		refs   []deliveryv1.ValuesReference
		inline string
		want   map[string]any
		err    string
	}{
		{
			name:   "in order, deeply, inline last",
			refs:   []deliveryv1.ValuesReference{{Kind: "ConfigMap", Name: "base"}, {Kind: "Secret", Name: "creds"}},
			inline: `{"m":{"z":3},"l":[7]}`,
			want:   map[string]any{"a": float64(1), "m": map[string]any{"x": float64(1), "k": float64(2), "z": float64(3)}, "l": []any{float64(7)}},
		},
		{
			name: "targetPath sets one value, typed as --set does, commas and backslashes kept",
			refs: []deliveryv1.ValuesReference{
				{Kind: "ConfigMap", Name: "base"},
				{Kind: "ConfigMap", Name: "base", ValuesKey: "replicas", TargetPath: "m.replicas"},
				{Kind: "Secret", Name: "creds", ValuesKey: "password", TargetPath: "auth.list[0].password"},
			},
			want: map[string]any{"a": float64(1), "m": map[string]any{"x": float64(1), "k": float64(1), "replicas": int64(3)},
				"l": []any{float64(1), float64(2)}, "auth": map[string]any{"list": []any{map[string]any{"password": `p,a\ss=1`}}}},
		},
		{
			name: "optional ones may be missing",
			refs: []deliveryv1.ValuesReference{{Kind: "ConfigMap", Name: "gone", Optional: true}, {Kind: "Secret", Name: "empty", Optional: true}},
			want: map[string]any{},
		},
		{name: "missing object", refs: []deliveryv1.ValuesReference{{Kind: "Secret", Name: "gone"}}, err: "Secret gone does not exist"},
		{name: "missing key", refs: []deliveryv1.ValuesReference{{Kind: "Secret", Name: "empty"}}, err: "Secret empty has no key values.yaml"},
		{name: "not YAML", refs: []deliveryv1.ValuesReference{{Kind: "Secret", Name: "creds", ValuesKey: "password"}}, err: "is not YAML values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inline *apiextensionsv1.JSON
			if tc.inline != "" {
				inline = &apiextensionsv1.JSON{Raw: []byte(tc.inline)}
			}
			got, err := mergeValues(tc.refs, objects, inline)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(tc.name, "missing") && !errors.Is(err, errValuesNotFound) {
					t.Fatalf("error %v is not errValuesNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
	// The inputs are not changed by a merge.
	a := map[string]any{"m": map[string]any{"x": 1}}
	_ = mergeMaps(a, map[string]any{"m": map[string]any{"x": 2}})
	if a["m"].(map[string]any)["x"] != 1 {
		t.Error("mergeMaps changed its input")
	}
}

func TestValuesYAMLIsStable(t *testing.T) {
	a, sumA, err := valuesYAML(map[string]any{"b": 1, "a": map[string]any{"d": 1, "c": 2}})
	if err != nil {
		t.Fatal(err)
	}
	b, sumB, _ := valuesYAML(map[string]any{"a": map[string]any{"c": 2, "d": 1}, "b": 1})
	if string(a) != string(b) || sumA != sumB || !strings.HasPrefix(sumA, "sha256:") {
		t.Fatalf("equal values gave %q/%s and %q/%s", a, sumA, b, sumB)
	}
}

func TestChartFiles(t *testing.T) {
	files := map[string][]byte{
		"podinfo/Chart.yaml": []byte("x"), "podinfo/templates/a.yaml": []byte("a"),
		"charts/app/Chart.yaml": []byte("y"), "charts/app/values.yaml": []byte("v"), "other.txt": nil,
	}
	got, err := chartFiles(map[string][]byte{"podinfo/Chart.yaml": []byte("x"), "podinfo/templates/a.yaml": []byte("a")}, "")
	if err != nil || len(got) != 2 || string(got["templates/a.yaml"]) != "a" {
		t.Fatalf("top folder: %v, %v", got, err)
	}
	// A path cannot leave the artifact: "../charts/app" is charts/app of its root.
	for _, dir := range []string{"charts/app", "./charts/app", "/charts/app/", "charts/../charts/app", "../charts/app"} {
		got, err := chartFiles(files, dir)
		if err != nil || len(got) != 2 || string(got["values.yaml"]) != "v" {
			t.Errorf("dir %s: %v, %v", dir, got, err)
		}
	}
	for _, dir := range []string{"charts", "missing"} {
		if _, err := chartFiles(files, dir); err == nil || !strings.Contains(err.Error(), "no chart at") {
			t.Errorf("dir %s: %v, want no chart", dir, err)
		}
	}
}

// TestSettingsDefaults: the statement names every setting the spoke runs with, and
// what the spec says wins over the defaults.
func TestSettingsDefaults(t *testing.T) {
	hr := &deliveryv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"}}
	hr.Spec.Chart = deliveryv1.HelmChartTemplate{Chart: "app"}
	hr.Spec.StorageNamespace = "history"
	hr.Spec.MaxHistory = new(int32)
	hr.Spec.Timeout = &metav1.Duration{Duration: time.Minute}
	hr.Spec.Install = &meta.HelmInstall{CRDs: meta.CRDsCreateReplace, CreateNamespace: true}
	hr.Spec.Upgrade = &meta.HelmUpgrade{Remediation: &meta.UpgradeRemediation{Retries: 2}}
	hr.Spec.Test = &meta.HelmTest{Enable: true}
	hr.Spec.DriftDetection = &meta.HelmDriftDetection{Mode: meta.HelmDriftWarn}
	hr.Status.Artifact = &meta.Artifact{URL: "https://hub/a", Digest: "sha256:a", Revision: "1.2.3"}

	d := deployment(hr, tenancy.Decision{ServiceAccountName: "team", ServiceAccountNamespace: "apps"})
	minute := &metav1.Duration{Duration: time.Minute}
	want := &meta.HelmReleaseSettings{
		ReleaseName: "web", StorageNamespace: "history", Chart: "app", ChartVersion: "1.2.3", MaxHistory: new(int32),
		Install:        &meta.HelmInstall{CRDs: meta.CRDsCreateReplace, CreateNamespace: true, Remediation: &meta.InstallRemediation{}},
		Upgrade:        &meta.HelmUpgrade{CRDs: meta.CRDsSkip, Remediation: &meta.UpgradeRemediation{Retries: 2, Strategy: meta.RemediateRollback}},
		Test:           &meta.HelmTest{Enable: true, Timeout: minute},
		Rollback:       &meta.HelmRollback{},
		Uninstall:      &meta.HelmUninstall{},
		DriftDetection: &meta.HelmDriftDetection{Mode: meta.HelmDriftWarn},
	}
	if diff := cmp.Diff(want, d.Spec.Helm); diff != "" {
		t.Errorf("helm settings (-want +got):\n%s", diff)
	}
	if d.Spec.ServiceAccountName != "team" || d.Spec.ServiceAccountNamespace != "apps" || d.Spec.TargetNamespace != "apps" ||
		!d.Spec.Prune || d.Spec.PostBuild == nil || d.Spec.Timeout.Duration != time.Minute {
		t.Errorf("assignment spec %+v", d.Spec)
	}
	// The Assignment does not share the HelmRelease's settings.
	d.Spec.Helm.Install.CRDs = "changed"
	if hr.Spec.Install.CRDs != meta.CRDsCreateReplace {
		t.Error("the deployment's Helm settings alias the HelmRelease's")
	}
}

func TestIntervalFloor(t *testing.T) {
	for given, want := range map[time.Duration]time.Duration{0: MinInterval, time.Second: MinInterval, time.Hour: time.Hour} {
		hr := &deliveryv1.HelmRelease{Spec: deliveryv1.HelmReleaseSpec{Interval: metav1.Duration{Duration: given}}}
		if got := interval(hr); got != want {
			t.Errorf("interval %s: requeue after %s, want %s", given, got, want)
		}
	}
}
