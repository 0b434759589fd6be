package healthexpr

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

func TestCompileRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		c    meta.CustomHealthCheck
		want string
	}{
		"syntax":           {meta.CustomHealthCheck{APIVersion: "v1", Kind: "X", Current: "status.ready =="}, "healthCheckExprs[0] (v1 X) current"},
		"unknown variable": {meta.CustomHealthCheck{APIVersion: "v1", Kind: "X", Current: "self.status.ready"}, "undeclared reference to 'self'"},
		"not a bool":       {meta.CustomHealthCheck{APIVersion: "v1", Kind: "X", Current: "'yes'"}, "not a bool"},
		"bad failed":       {meta.CustomHealthCheck{APIVersion: "v1", Kind: "X", Current: "true", Failed: "status.("}, "failed"},
		"no current":       {meta.CustomHealthCheck{APIVersion: "v1", Kind: "X"}, "current is required"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Compile([]meta.CustomHealthCheck{tc.c})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	two := meta.CustomHealthCheck{APIVersion: "v1", Kind: "X", Current: "true"}
	if _, err := Compile([]meta.CustomHealthCheck{two, two}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("a kind checked twice: %v", err)
	}
}

// TestCostLimit: an expression that would take the agent's CPU is stopped.
func TestCostLimit(t *testing.T) {
	checks, err := Compile([]meta.CustomHealthCheck{{APIVersion: "v1", Kind: "X",
		Current: "spec.items.all(a, spec.items.all(b, spec.items.all(c, a + b + c >= 0)))"}})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]any, 300)
	for i := range items {
		items[i] = int64(i)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "X", "spec": map[string]any{"items": items}}}
	s, _, err := checks[0].Evaluate(u)
	if err == nil || s != InProgress || !strings.Contains(err.Error(), "cost") {
		t.Fatalf("got %s, %v; want the cost limit", s, err)
	}
}
