package healthexpr

import (
	"testing"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

func BenchmarkCompile(b *testing.B) {
	c := []meta.CustomHealthCheck{{APIVersion: "example.com/v1", Kind: "Database",
		InProgress: "status.?phase.orValue('') == 'Provisioning'",
		Failed:     "status.?phase.orValue('') == 'Broken'",
		Current:    "status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True')"}}
	for b.Loop() {
		if _, err := Compile(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileCached(b *testing.B) {
	c := []meta.CustomHealthCheck{{APIVersion: "example.com/v1", Kind: "Database",
		InProgress: "status.?phase.orValue('') == 'Provisioning'",
		Failed:     "status.?phase.orValue('') == 'Broken'",
		Current:    "status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True')"}}
	for b.Loop() {
		if _, err := CompileCached(c); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCompileCached(t *testing.T) {
	c := []meta.CustomHealthCheck{{APIVersion: "v1", Kind: "X", Current: "true"}}
	a, err := CompileCached(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := CompileCached(c)
	if &a[0] != &b[0] {
		t.Fatal("the same checks were compiled twice")
	}
	c[0].Current = "false"
	d, _ := CompileCached(c)
	if &d[0] == &a[0] {
		t.Fatal("changed checks came from the cache")
	}
	if _, err := CompileCached([]meta.CustomHealthCheck{{APIVersion: "v1", Kind: "X", Current: "=="}}); err == nil {
		t.Fatal("a bad expression compiled from the cache")
	}
}
