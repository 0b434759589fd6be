// Package conditions sets the kstatus condition triple (Ready, Reconciling, Stalled)
// consistently on every Flotilla kind, so that each controller says the same things
// the same way.
package conditions

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

// Object is a Flotilla object with status conditions.
type Object interface {
	GetGeneration() int64
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// Set sets one condition, keeping its transition time when the status is unchanged.
func Set(obj Object, typ string, status metav1.ConditionStatus, reason, message string) {
	c := obj.GetConditions()
	apimeta.SetStatusCondition(&c, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: trim(message), ObservedGeneration: obj.GetGeneration(),
	})
	obj.SetConditions(c)
}

// Remove drops a condition.
func Remove(obj Object, typ string) {
	c := obj.GetConditions()
	apimeta.RemoveStatusCondition(&c, typ)
	obj.SetConditions(c)
}

// Get returns a condition or nil.
func Get(obj Object, typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(obj.GetConditions(), typ)
}

// IsTrue reports whether the condition is present and True.
func IsTrue(obj Object, typ string) bool {
	return apimeta.IsStatusConditionTrue(obj.GetConditions(), typ)
}

// MarkReady: the work is done. Ready=True; Reconciling and Stalled go.
func MarkReady(obj Object, reason, message string) {
	Set(obj, meta.ReadyCondition, metav1.ConditionTrue, reason, message)
	Remove(obj, meta.ReconcilingCondition)
	Remove(obj, meta.StalledCondition)
}

// MarkReconciling: work is under way. Reconciling=True, Ready=Unknown, no Stalled.
func MarkReconciling(obj Object, reason, message string) {
	Set(obj, meta.ReconcilingCondition, metav1.ConditionTrue, reason, message)
	Set(obj, meta.ReadyCondition, metav1.ConditionUnknown, reason, message)
	Remove(obj, meta.StalledCondition)
}

// MarkFailed: the last attempt failed and will be retried. Ready=False, no Stalled.
func MarkFailed(obj Object, reason, message string) {
	Set(obj, meta.ReadyCondition, metav1.ConditionFalse, reason, message)
	Remove(obj, meta.ReconcilingCondition)
	Remove(obj, meta.StalledCondition)
}

// MarkStalled: nothing changes until the user changes something. Ready=False, Stalled=True.
func MarkStalled(obj Object, reason, message string) {
	Set(obj, meta.ReadyCondition, metav1.ConditionFalse, reason, message)
	Set(obj, meta.StalledCondition, metav1.ConditionTrue, reason, message)
	Remove(obj, meta.ReconcilingCondition)
}

// maxMessage keeps condition messages within the API's 32768-byte limit.
const maxMessage = 4096

func trim(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage-3] + "..."
}
