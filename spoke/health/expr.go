package health

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/api/healthexpr"
)

// ComputeWith returns the status of a live object by the deployment's CEL check for
// its apiVersion and kind when there is one (spec.healthCheckExprs), by Compute
// otherwise. As kstatus does first for every kind, an object being deleted or
// whose observedGeneration is behind its generation is InProgress before any
// expression is evaluated. An expression that cannot be evaluated yet (a field not
// there yet) keeps the object InProgress, so the wait ends at the timeout.
func ComputeWith(u *unstructured.Unstructured, checks []healthexpr.Check) Result {
	if u == nil || len(checks) == 0 {
		return Compute(u)
	}
	c := healthexpr.For(checks, u.GetAPIVersion(), u.GetKind())
	if c == nil {
		return Compute(u)
	}
	if !u.GetDeletionTimestamp().IsZero() {
		return Result{InProgress, "being deleted"}
	}
	if og, gen := intField(u, -1, "status", "observedGeneration"), intField(u, 0, "metadata", "generation"); og >= 0 && og < gen {
		return Result{InProgress, fmt.Sprintf("generation %d not yet observed (observed %d)", gen, og)}
	}
	s, msg, err := c.Evaluate(u)
	if err != nil {
		return Result{InProgress, err.Error()}
	}
	return Result{Status(s), msg}
}
