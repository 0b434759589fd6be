package env

import (
	"context"
	"fmt"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// Timeout is how long Eventually and the Wait helpers poll by default: generous,
// because tests share two cores with real API servers.
var Timeout = 60 * time.Second

// Interval between polls.
var Interval = 100 * time.Millisecond

// Eventually polls cond until it returns nil and fails the test with cond's last error
// after Timeout. what says what was awaited, for the failure message.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	EventuallyWithin(t, Timeout, what, cond)
}

// EventuallyWithin is Eventually with its own timeout.
func EventuallyWithin(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(Interval)
	}
}

// Consistently fails the test as soon as cond returns an error during d. It suits a
// property that must hold over a period; to check that something did not happen,
// wait instead for a barrier the code under test reports after it would have
// happened (observedGeneration, lastHandledReconcileAt, a later object's result),
// then check once.
func Consistently(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	began := time.Now()
	for {
		if err := cond(); err != nil {
			t.Fatalf("%s stopped holding after %s: %v", what, time.Since(began).Round(time.Millisecond), err)
		}
		if time.Since(began) >= d {
			return
		}
		time.Sleep(Interval)
	}
}

// ConditionedObject is a Flotilla object: it has status conditions.
type ConditionedObject interface {
	client.Object
	GetConditions() []metav1.Condition
}

// WaitForCondition re-reads obj (by its name and namespace) until its condition typ
// has the given status, and fails with the condition's last reason and message.
func WaitForCondition(t testing.TB, c client.Client, obj ConditionedObject, typ string, status metav1.ConditionStatus) {
	t.Helper()
	key := client.ObjectKeyFromObject(obj)
	what := fmt.Sprintf("%s %s to have %s=%s", kindOf(c, obj), key, typ, status)
	Eventually(t, what, func() error {
		if err := c.Get(context.Background(), key, obj); err != nil {
			return err
		}
		cond := apimeta.FindStatusCondition(obj.GetConditions(), typ)
		switch {
		case cond == nil:
			return fmt.Errorf("no %s condition yet", typ)
		case cond.Status != status:
			return fmt.Errorf("%s=%s, reason %s: %s", typ, cond.Status, cond.Reason, cond.Message)
		case cond.ObservedGeneration != 0 && cond.ObservedGeneration < obj.GetGeneration():
			return fmt.Errorf("%s=%s but for generation %d, not %d", typ, cond.Status, cond.ObservedGeneration, obj.GetGeneration())
		}
		return nil
	})
}

// WaitReady waits until obj is Ready=True for its current generation.
func WaitReady(t testing.TB, c client.Client, obj ConditionedObject) {
	t.Helper()
	WaitForCondition(t, c, obj, meta.ReadyCondition, metav1.ConditionTrue)
}

// WaitFor re-reads obj until check returns nil, and fails with check's last error.
func WaitFor[T client.Object](t testing.TB, c client.Client, obj T, check func(T) error) {
	t.Helper()
	key := client.ObjectKeyFromObject(obj)
	Eventually(t, fmt.Sprintf("%s %s", kindOf(c, obj), key), func() error {
		if err := c.Get(context.Background(), key, obj); err != nil {
			return err
		}
		return check(obj)
	})
}

// WaitGone waits until obj no longer exists.
func WaitGone(t testing.TB, c client.Client, obj client.Object) {
	t.Helper()
	key := client.ObjectKeyFromObject(obj)
	Eventually(t, fmt.Sprintf("%s %s to be gone", kindOf(c, obj), key), func() error {
		err := c.Get(context.Background(), key, obj)
		if err == nil {
			return fmt.Errorf("still there (deletionTimestamp %v, finalizers %v)", obj.GetDeletionTimestamp(), obj.GetFinalizers())
		}
		return client.IgnoreNotFound(err)
	})
}

func kindOf(c client.Client, obj client.Object) string {
	if gvk, err := c.GroupVersionKindFor(obj); err == nil {
		return gvk.Kind
	}
	return fmt.Sprintf("%T", obj)
}
