package cli

import "errors"

// ExitError ends the command with Code and no message of its own: the command has
// already said what it found (flotilla diff exits 1 when there are changes).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return "exit status " + itoa(int32(e.Code)) }

// ExitCode is the process exit code for a command's error: 0 for none, an
// ExitError's code, else 1. quiet says the error has nothing more to print.
func ExitCode(err error) (code int, quiet bool) {
	if err == nil {
		return 0, true
	}
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code, true
	}
	return 1, false
}
