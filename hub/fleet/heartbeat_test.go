package fleet

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
)

func TestJudgeHeartbeat(t *testing.T) {
	const grace = 40 * time.Second
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	for _, tc := range []struct {
		name        string
		renewed     *time.Time
		status      metav1.ConditionStatus
		reason      string
		recheck     time.Duration
		msgContains string
	}{
		{"never reported", nil, metav1.ConditionUnknown, meta.AgentNotConnectedReason, 0, "no agent"},
		{"just renewed", ago(0), metav1.ConditionTrue, meta.HeartbeatFreshReason, grace + time.Second, "fresh"},
		{"renewed 10s ago", ago(10 * time.Second), metav1.ConditionTrue, meta.HeartbeatFreshReason, 31 * time.Second, "fresh"},
		{"exactly the grace period", ago(grace), metav1.ConditionTrue, meta.HeartbeatFreshReason, time.Second, "fresh"},
		{"just past the grace period", ago(grace + time.Millisecond), metav1.ConditionFalse, meta.HeartbeatStaleReason, 0, "since 2026-03-01T11:59:19Z"},
		{"long silent", ago(time.Hour), metav1.ConditionFalse, meta.HeartbeatStaleReason, 0, "grace period 40s"},
		{"agent clock ahead", ago(-5 * time.Second), metav1.ConditionTrue, meta.HeartbeatFreshReason, grace + 6*time.Second, "fresh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hb := JudgeHeartbeat(tc.renewed, now, grace)
			if hb.Status != tc.status || hb.Reason != tc.reason || hb.RecheckAfter != tc.recheck {
				t.Errorf("got %s/%s recheck %s, want %s/%s recheck %s", hb.Status, hb.Reason, hb.RecheckAfter, tc.status, tc.reason, tc.recheck)
			}
			if !strings.Contains(hb.Message, tc.msgContains) {
				t.Errorf("message %q does not contain %q", hb.Message, tc.msgContains)
			}
		})
	}
}

// A look without a renewal must find the same condition, or every requeue would write.
func TestJudgeHeartbeatIsStableBetweenRenewals(t *testing.T) {
	const grace = 40 * time.Second
	renewed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, pair := range [][2]time.Duration{{time.Second, 30 * time.Second}, {41 * time.Second, 5 * time.Minute}} {
		a := JudgeHeartbeat(&renewed, renewed.Add(pair[0]), grace)
		b := JudgeHeartbeat(&renewed, renewed.Add(pair[1]), grace)
		if a.Status != b.Status || a.Reason != b.Reason || a.Message != b.Message {
			t.Errorf("looks at +%s and +%s differ: %+v vs %+v", pair[0], pair[1], a, b)
		}
	}
}

func TestRecordedHeartbeat(t *testing.T) {
	const step = 20 * time.Second
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := func(d time.Duration) *metav1.Time { t := metav1.NewTime(base.Add(d)); return &t }
	at := func(d time.Duration) *time.Time { t := base.Add(d); return &t }
	for _, tc := range []struct {
		name         string
		recorded     *metav1.Time
		renewed      *time.Time
		readyChanged bool
		want         *metav1.Time
	}{
		{"nothing yet", nil, nil, false, nil},
		{"first renewal", nil, at(1500 * time.Millisecond), false, rec(time.Second)},
		{"lease gone keeps the last", rec(0), nil, true, rec(0)},
		{"small move is not written", rec(0), at(10 * time.Second), false, rec(0)},
		{"exactly one step is not written", rec(0), at(step), false, rec(0)},
		{"more than a step is written", rec(0), at(step + time.Second), false, rec(step + time.Second)},
		{"a Ready change writes the exact renewal", rec(0), at(3 * time.Second), true, rec(3 * time.Second)},
		{"a renewal far before the record is written", rec(time.Hour), at(0), false, rec(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RecordedHeartbeat(tc.recorded, tc.renewed, tc.readyChanged, step)
			switch {
			case got == nil && tc.want == nil:
			case got == nil || tc.want == nil || !got.Equal(tc.want):
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLeaseTime(t *testing.T) {
	acquired := metav1.NewMicroTime(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	renewed := metav1.NewMicroTime(acquired.Add(time.Minute))
	for _, tc := range []struct {
		name string
		spec coordinationv1.LeaseSpec
		want *metav1.MicroTime
	}{
		{"empty", coordinationv1.LeaseSpec{}, nil},
		{"acquired only", coordinationv1.LeaseSpec{AcquireTime: &acquired}, &acquired},
		{"renewed", coordinationv1.LeaseSpec{AcquireTime: &acquired, RenewTime: &renewed}, &renewed},
	} {
		got := leaseTime(&coordinationv1.Lease{Spec: tc.spec})
		if (got == nil) != (tc.want == nil) || (got != nil && !got.Equal(tc.want.Time)) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
