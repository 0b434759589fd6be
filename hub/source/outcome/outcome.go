// Package outcome owns how every source kind (git, oci, helm) classifies a failed
// fetch: transient, waiting or stalled, with the condition reason to show. The shared
// fetch helpers (hub/source/credentials, hub/source/versions) return these classes
// too, so one cause fails the same way whichever kind meets it.
package outcome

import (
	"errors"
	"fmt"
)

// Class says how a failed fetch is retried.
type Class int

const (
	// Transient: return the error and let the controller back off; the next attempt
	// may work without anyone changing anything (network, server, refused credentials
	// being fixed in their Secret).
	Transient Class = iota
	// Waiting: try again at the next interval; retrying sooner would not help (no tag
	// in the range yet, a Secret not created yet, content the server must fix).
	Waiting
	// Stalled: nothing changes until the user changes the spec.
	Stalled
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "Transient"
	case Waiting:
		return "Waiting"
	case Stalled:
		return "Stalled"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Failure is a classified fetch error; its Reason becomes the condition reason. An
// empty Reason leaves the choice to the kind (its default failure reason), so that
// shared helpers can classify a cause without naming a kind's reason.
type Failure struct {
	Class  Class
	Reason string
	Err    error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Fail returns err classified; nil stays nil.
func Fail(class Class, reason string, err error) error {
	if err == nil {
		return nil
	}
	return &Failure{Class: class, Reason: reason, Err: err}
}

// Classify returns the classification of err: the outermost Failure in its chain,
// else Transient (an error nobody classified may well go away). An empty reason
// becomes defaultReason. The message is err's own, so wrapping a Failure with more
// context keeps both the context and the class.
func Classify(err error, defaultReason string) Failure {
	out := Failure{Class: Transient, Reason: defaultReason, Err: err}
	var f *Failure
	if errors.As(err, &f) {
		out.Class = f.Class
		if f.Reason != "" {
			out.Reason = f.Reason
		}
	}
	return out
}
