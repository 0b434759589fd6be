package notification

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

func TestFilter(t *testing.T) {
	alert := func(mod func(*notificationv1.AlertSpec)) *notificationv1.Alert {
		a := &notificationv1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "a"}, Spec: notificationv1.AlertSpec{
			EventSources: []notificationv1.EventSource{{Kind: "Kustomization", Name: "*"}, {Kind: "Cluster", Name: "spoke-1"}},
		}}
		if mod != nil {
			mod(&a.Spec)
		}
		return a
	}
	info := Event{Kind: "Kustomization", Namespace: "team-a", Name: "app", Severity: SeverityInfo, Message: "revision r is ready on 3 of 3 clusters", Labels: map[string]string{"tier": "web"}}
	failed := info
	failed.Severity, failed.Message = SeverityError, "rollout of revision r stalled on cluster spoke-2: boom"
	otherNS := info
	otherNS.Namespace = "team-b"
	helm := info
	helm.Kind = "HelmRelease"
	cluster := Event{Kind: "Cluster", Name: "spoke-1", Severity: SeverityError, Message: "cluster spoke-1 is not ready"}
	cluster2 := cluster
	cluster2.Name = "spoke-2"
	for _, tc := range []struct {
		name  string
		alert *notificationv1.Alert
		event Event
		want  bool
	}{
		{"kind and * in the Alert's namespace", alert(nil), info, true},
		{"another namespace", alert(nil), otherNS, false},
		{"another kind", alert(nil), helm, false},
		{"a named cluster", alert(nil), cluster, true},
		{"another cluster", alert(nil), cluster2, false},
		{"error severity drops info", alert(func(s *notificationv1.AlertSpec) { s.EventSeverity = SeverityError }), info, false},
		{"error severity keeps errors", alert(func(s *notificationv1.AlertSpec) { s.EventSeverity = SeverityError }), failed, true},
		{"matchLabels that match", alert(func(s *notificationv1.AlertSpec) { s.EventSources[0].MatchLabels = map[string]string{"tier": "web"} }), info, true},
		{"matchLabels that do not", alert(func(s *notificationv1.AlertSpec) { s.EventSources[0].MatchLabels = map[string]string{"tier": "db"} }), info, false},
		{"inclusion list met", alert(func(s *notificationv1.AlertSpec) { s.InclusionList = []string{"^nothing", "stalled on cluster"} }), failed, true},
		{"inclusion list not met", alert(func(s *notificationv1.AlertSpec) { s.InclusionList = []string{"stalled on cluster"} }), info, false},
		{"exclusion wins over inclusion", alert(func(s *notificationv1.AlertSpec) {
			s.InclusionList = []string{".*"}
			s.ExclusionList = []string{"spoke-[0-9]+: boom$"}
		}), failed, false},
		{"suspended", alert(func(s *notificationv1.AlertSpec) { s.Suspend = true }), info, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFilter(tc.alert)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Matches(tc.event); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := NewFilter(alert(func(s *notificationv1.AlertSpec) { s.ExclusionList = []string{"ok", "(unclosed"} })); err == nil {
		t.Error("an exclusion entry that is no regular expression was accepted")
	}
}

func TestMerge(t *testing.T) {
	e := Event{Reason: "DriftCorrected", Message: "ConfigMap x corrected", Metadata: map[string]string{ClusterKey: "spoke-2", RevisionKey: "r"}}
	got := Merge(e, map[string]bool{"spoke-3": true, "spoke-2": true, "spoke-1": true})
	if want := "3 clusters (spoke-1, spoke-2, spoke-3); cluster spoke-2: ConfigMap x corrected"; got.Message != want {
		t.Errorf("message %q, want %q", got.Message, want)
	}
	if got.Metadata[ClustersKey] != "spoke-1,spoke-2,spoke-3" || got.Metadata[ClusterKey] != "" || got.Metadata[RevisionKey] != "r" {
		t.Errorf("metadata %v", got.Metadata)
	}
	if e.Metadata[ClusterKey] != "spoke-2" {
		t.Error("Merge changed the first event's metadata")
	}
	if one := Merge(e, map[string]bool{"spoke-2": true}); one.Message != "cluster spoke-2: ConfigMap x corrected" || one.Metadata[ClusterKey] != "spoke-2" {
		t.Errorf("one cluster: %+v", one)
	}
}
