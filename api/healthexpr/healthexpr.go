package healthexpr

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// Variables are the top-level fields of an object an expression may name.
var Variables = []string{"apiVersion", "kind", "metadata", "spec", "status", "data"}

// CostLimit bounds the work of one evaluation: expressions come from tenants and
// run in the agent.
const CostLimit = 1_000_000

// Status is what a check says of an object.
type Status string

// The statuses, as kstatus names them.
const (
	Current    Status = "Current"
	InProgress Status = "InProgress"
	Failed     Status = "Failed"
)

// Check is one compiled CustomHealthCheck.
type Check struct {
	APIVersion, Kind string
	exprs            []expr // inProgress, failed, current: the order they are evaluated in
}

type expr struct {
	status Status
	source string
	prg    cel.Program
}

var env = func() *cel.Env {
	opts := []cel.EnvOption{
		cel.OptionalTypes(), ext.Strings(), ext.Sets(), ext.Lists(), ext.Encoders(),
		cel.CrossTypeNumericComparisons(true), cel.DefaultUTCTimeZone(true),
	}
	for _, v := range Variables {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		panic(err)
	}
	return e
}()

// Compile compiles every check, naming the first bad expression (its index, kind and
// field) in the error.
func Compile(checks []meta.CustomHealthCheck) ([]Check, error) {
	out := make([]Check, 0, len(checks))
	seen := map[string]int{}
	for i, c := range checks {
		key := c.APIVersion + "/" + c.Kind
		if j, ok := seen[key]; ok {
			return nil, fmt.Errorf("healthCheckExprs[%d]: %s %s is checked by healthCheckExprs[%d] already", i, c.APIVersion, c.Kind, j)
		}
		seen[key] = i
		if c.Current == "" {
			return nil, fmt.Errorf("healthCheckExprs[%d] (%s %s): current is required", i, c.APIVersion, c.Kind)
		}
		cc := Check{APIVersion: c.APIVersion, Kind: c.Kind}
		for _, f := range []struct {
			field, source string
			status        Status
		}{{"inProgress", c.InProgress, InProgress}, {"failed", c.Failed, Failed}, {"current", c.Current, Current}} {
			if f.source == "" {
				continue
			}
			prg, err := compile(f.source)
			if err != nil {
				return nil, fmt.Errorf("healthCheckExprs[%d] (%s %s) %s: %w", i, c.APIVersion, c.Kind, f.field, err)
			}
			cc.exprs = append(cc.exprs, expr{status: f.status, source: f.source, prg: prg})
		}
		out = append(out, cc)
	}
	return out, nil
}

// cache keeps compiled checks by their source: the agent looks at health every
// poll, and compiling costs about half a millisecond an expression. CEL programs
// are safe for concurrent use.
var cache = struct {
	sync.Mutex
	m map[string][]Check
}{m: map[string][]Check{}}

// cacheSize bounds the cache; past it, it starts again empty.
const cacheSize = 256

// CompileCached is Compile, remembering the result for the same checks.
func CompileCached(checks []meta.CustomHealthCheck) ([]Check, error) {
	if len(checks) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(checks)
	if err != nil {
		return nil, err
	}
	key := string(b)
	cache.Lock()
	c, ok := cache.m[key]
	cache.Unlock()
	if ok {
		return c, nil
	}
	c, err = Compile(checks)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	if len(cache.m) >= cacheSize {
		cache.m = map[string][]Check{}
	}
	cache.m[key] = c
	cache.Unlock()
	return c, nil
}

func compile(source string) (cel.Program, error) {
	ast, iss := env.Compile(source)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("the expression gives %s, not a bool", t)
	}
	return env.Program(ast, cel.CostLimit(CostLimit), cel.InterruptCheckFrequency(100))
}

// For returns the check for an object's apiVersion and kind, if there is one.
func For(checks []Check, apiVersion, kind string) *Check {
	for i := range checks {
		if checks[i].APIVersion == apiVersion && checks[i].Kind == kind {
			return &checks[i]
		}
	}
	return nil
}

// Evaluate gives the status of u: the first expression (inProgress, failed, current)
// that is true, InProgress when none is. An expression that cannot be evaluated
// (a field the object does not have yet, say) is an error: the caller keeps waiting.
func (c *Check) Evaluate(u *unstructured.Unstructured) (Status, string, error) {
	vars := make(map[string]any, len(Variables))
	for _, v := range Variables {
		// An absent field is an empty map, so that status.?phase reads as unset on an
		// object no controller has written a status to yet (status.phase still fails).
		vars[v] = map[string]any{}
		if x, ok := u.Object[v]; ok {
			vars[v] = x
		}
	}
	for _, e := range c.exprs {
		out, _, err := e.prg.Eval(vars)
		if err != nil {
			return InProgress, "", fmt.Errorf("evaluating %s expression %q: %w", lower(e.status), e.source, err)
		}
		b, ok := out.Value().(bool)
		if !ok {
			return InProgress, "", fmt.Errorf("%s expression %q gave %v, not a bool", lower(e.status), e.source, out.Value())
		}
		if b {
			return e.status, fmt.Sprintf("%s expression is true: %s", lower(e.status), e.source), nil
		}
	}
	return InProgress, "no health expression is true yet", nil
}

func lower(s Status) string {
	switch s {
	case InProgress:
		return "inProgress"
	case Failed:
		return "failed"
	}
	return "current"
}
