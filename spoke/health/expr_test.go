package health

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/api/healthexpr"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

func TestComputeWith(t *testing.T) {
	checks, err := healthexpr.Compile([]meta.CustomHealthCheck{{
		APIVersion: "example.com/v1", Kind: "Database",
		InProgress: "has(status.phase) && status.phase == 'Provisioning'",
		Failed:     "status.?phase.orValue('') == 'Broken'",
		Current:    "status.conditions.exists(c, c.type == 'Online' && c.status == 'True')",
	}})
	if err != nil {
		t.Fatal(err)
	}
	optional, err := healthexpr.Compile([]meta.CustomHealthCheck{{APIVersion: "example.com/v1", Kind: "Database",
		Current: "status.?phase.orValue('') == 'Online'"}})
	if err != nil {
		t.Fatal(err)
	}
	db := func(gen int64, status map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "example.com/v1", "kind": "Database",
			"metadata": map[string]any{"name": "db", "generation": gen},
		}}
		if status != nil {
			u.Object["status"] = status
		}
		return u
	}
	online := []any{map[string]any{"type": "Online", "status": "True"}}
	for name, tc := range map[string]struct {
		u    *unstructured.Unstructured
		want Status
		msg  string
	}{
		"no status yet: the expression cannot be evaluated": {db(1, nil), InProgress, "evaluating"},
		"in progress wins over current":                     {db(1, map[string]any{"phase": "Provisioning", "conditions": online}), InProgress, "inProgress expression is true"},
		"failed":                                            {db(1, map[string]any{"phase": "Broken", "conditions": online}), Failed, "failed expression is true"},
		"current":                                           {db(1, map[string]any{"phase": "Ready", "conditions": online}), Current, "current expression is true"},
		"none true":                                         {db(1, map[string]any{"phase": "Ready", "conditions": []any{}}), InProgress, "no health expression is true"},
		"generation not observed":                           {db(2, map[string]any{"observedGeneration": int64(1), "phase": "Ready", "conditions": online}), InProgress, "not yet observed"},
		// Another kind keeps the kstatus rules: Ready=False is in progress.
		"other kind": {&unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Cache",
			"status": map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "False"}}}}}, InProgress, "Ready=False"},
	} {
		t.Run(name, func(t *testing.T) {
			got := ComputeWith(tc.u, checks)
			if got.Status != tc.want || !strings.Contains(got.Message, tc.msg) {
				t.Fatalf("got %s %q, want %s with %q", got.Status, got.Message, tc.want, tc.msg)
			}
		})
	}
	// Optional access on an object with no status yet reads as unset.
	if got := ComputeWith(db(1, nil), optional); got.Status != InProgress || !strings.Contains(got.Message, "no health expression is true") {
		t.Fatalf("no status, optional access: %s %q", got.Status, got.Message)
	}
}
