package outcome

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	cause := errors.New("boom")
	for _, tc := range []struct {
		name   string
		err    error
		class  Class
		reason string
		msg    string
	}{
		{"unclassified is transient with the kind's reason", cause, Transient, "KindFailed", "boom"},
		{"context deadline is transient", context.DeadlineExceeded, Transient, "KindFailed", "context deadline exceeded"},
		{"waiting keeps its reason", Fail(Waiting, "SecretNotFound", cause), Waiting, "SecretNotFound", "boom"},
		{"stalled keeps its reason", Fail(Stalled, "InvalidURL", cause), Stalled, "InvalidURL", "boom"},
		{"empty reason takes the kind's", Fail(Waiting, "", cause), Waiting, "KindFailed", "boom"},
		{"wrapped keeps class and context", fmt.Errorf("revision r1: %w", Fail(Stalled, "InvalidSemVer", cause)), Stalled, "InvalidSemVer", "revision r1: boom"},
		{"outermost wins", Fail(Waiting, "Outer", Fail(Stalled, "Inner", cause)), Waiting, "Outer", "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Classify(tc.err, "KindFailed")
			if f.Class != tc.class || f.Reason != tc.reason || f.Err.Error() != tc.msg {
				t.Fatalf("Classify = %v/%s %q, want %v/%s %q", f.Class, f.Reason, f.Err, tc.class, tc.reason, tc.msg)
			}
		})
	}
	if Fail(Stalled, "X", nil) != nil {
		t.Fatal("Fail(nil) is not nil")
	}
}
