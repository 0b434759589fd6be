package sourceenv

import (
	"errors"
	"fmt"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// Ready: Ready=True for the current generation.
func Ready(o Source) error {
	c := apimeta.FindStatusCondition(o.GetConditions(), meta.ReadyCondition)
	if c == nil || c.Status != metav1.ConditionTrue {
		return fmt.Errorf("not Ready: %+v", c)
	}
	if o.GetObservedGeneration() != o.GetGeneration() {
		return fmt.Errorf("observedGeneration %d, generation %d", o.GetObservedGeneration(), o.GetGeneration())
	}
	return nil
}

// ReadyWith: Ready, with an artifact of the revision.
func ReadyWith(revision string) func(Source) error {
	return func(o Source) error {
		if err := Ready(o); err != nil {
			return err
		}
		if a := o.GetArtifact(); a == nil || a.Revision != revision {
			return fmt.Errorf("artifact %+v, want revision %s", a, revision)
		}
		return nil
	}
}

// FailedWith: Ready=False with the reason and a message containing msg.
func FailedWith(reason, msg string) func(Source) error {
	return conditionWith(meta.ReadyCondition, metav1.ConditionFalse, reason, msg)
}

// StalledWith: Stalled=True with the reason and a message containing msg.
func StalledWith(reason, msg string) func(Source) error {
	return conditionWith(meta.StalledCondition, metav1.ConditionTrue, reason, msg)
}

// ConditionIs: the condition typ has the status.
func ConditionIs(typ string, status metav1.ConditionStatus) func(Source) error {
	return conditionWith(typ, status, "", "")
}

func conditionWith(typ string, status metav1.ConditionStatus, reason, msg string) func(Source) error {
	return func(o Source) error {
		c := apimeta.FindStatusCondition(o.GetConditions(), typ)
		if c == nil || c.Status != status || (reason != "" && c.Reason != reason) || !strings.Contains(c.Message, msg) {
			return fmt.Errorf("%s = %+v, want %s/%s with %q", typ, c, status, reason, msg)
		}
		return nil
	}
}

// Handled: the reconcile requested with the value at has been handled.
func Handled(at string) func(Source) error {
	return func(o Source) error {
		if got := o.GetLastHandledReconcileAt(); got != at {
			return fmt.Errorf("lastHandledReconcileAt %q, want %q", got, at)
		}
		return nil
	}
}

// NoArtifact: nothing was stored.
func NoArtifact(o Source) error {
	if a := o.GetArtifact(); a != nil {
		return errors.New("artifact " + a.Revision + " without a successful fetch")
	}
	return nil
}
