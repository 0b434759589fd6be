package postbuild

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// namePattern is what a variable name must look like, as in Flux and POSIX shells.
var namePattern = regexp.MustCompile(`^[_a-zA-Z][_a-zA-Z0-9]*$`)

// ValidName reports whether name can be used as a variable.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// ValidateNames refuses variables whose names could never be referenced, so that a
// typo in a Cluster's variables is reported rather than silently ignored.
func ValidateNames(vars map[string]string) error {
	var bad []string
	for k := range vars {
		if !ValidName(k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("invalid variable names %q: a name must match %s", bad, namePattern)
}

// UnsetError is returned in strict mode for a variable that has no value and no default.
type UnsetError struct{ Name string }

func (e *UnsetError) Error() string {
	return fmt.Sprintf("variable %q is not set and has no default", e.Name)
}

// Expand replaces every variable reference in s:
//
//	${name}            the value of name; "" when unset (an error when strict)
//	${name:=default}   the value of name, or default when name is unset or empty
//	${name:-default}   the same
//	$${name}           the literal text ${name}
//
// A default may itself hold references. Text that is not a well-formed reference
// (a bad name, a missing "}", a bare $name) is left as it is, so that shell scripts
// and other templates embedded in manifests pass through untouched.
func Expand(s string, vars map[string]string, strict bool) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		// $${ is the escape for a literal ${.
		if j > i && s[j-1] == '$' {
			b.WriteString(s[i : j-1])
			b.WriteString("${")
			i = j + 2
			continue
		}
		b.WriteString(s[i:j])
		end := closing(s, j+2)
		if end < 0 {
			b.WriteString(s[j:])
			break
		}
		val, ok, err := evaluate(s[j+2:end], vars, strict)
		if err != nil {
			return "", err
		}
		if !ok {
			b.WriteString(s[j : end+1])
		} else {
			b.WriteString(val)
		}
		i = end + 1
	}
	return b.String(), nil
}

// closing returns the index of the "}" that ends the reference whose body starts at
// from, counting nested ${…} in defaults, or -1.
func closing(s string, from int) int {
	depth := 0
	for k := from; k < len(s); k++ {
		switch {
		case s[k] == '$' && k+1 < len(s) && s[k+1] == '{':
			depth++
			k++
		case s[k] == '}':
			if depth == 0 {
				return k
			}
			depth--
		}
	}
	return -1
}

// evaluate returns the value of one reference body (what is between "${" and "}");
// ok is false when the body is not a reference at all.
func evaluate(body string, vars map[string]string, strict bool) (val string, ok bool, err error) {
	name, def, hasDefault := body, "", false
	if k := strings.Index(body, ":"); k >= 0 {
		if k+1 >= len(body) || (body[k+1] != '=' && body[k+1] != '-') {
			return "", false, nil
		}
		name, def, hasDefault = body[:k], body[k+2:], true
	}
	if !ValidName(name) {
		return "", false, nil
	}
	if v, set := vars[name]; set && (v != "" || !hasDefault) {
		return v, true, nil
	}
	if hasDefault {
		v, err := Expand(def, vars, strict)
		return v, err == nil, err
	}
	if strict {
		return "", false, &UnsetError{Name: name}
	}
	return "", true, nil
}
