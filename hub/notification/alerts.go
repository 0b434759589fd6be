package notification

import (
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/labels"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

// Filter is an Alert's event selection with its expressions compiled.
type Filter struct {
	alert   *notificationv1.Alert
	include []*regexp.Regexp
	exclude []*regexp.Regexp
}

// NewFilter compiles an Alert's inclusion and exclusion lists; an entry that is not
// a regular expression is an error naming it.
func NewFilter(a *notificationv1.Alert) (*Filter, error) {
	f := &Filter{alert: a}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]*regexp.Regexp
	}{{"inclusionList", a.Spec.InclusionList, &f.include}, {"exclusionList", a.Spec.ExclusionList, &f.exclude}} {
		for i, s := range l.in {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, fmt.Errorf("%s[%d] %q: %w", l.name, i, s, err)
			}
			*l.out = append(*l.out, re)
		}
	}
	return f, nil
}

// Matches reports whether the event goes to the Alert's provider: one event source
// selects its object, its severity is enough, and its message passes the inclusion
// and exclusion lists. Tenancy is not looked at here (tenancy.AlertDecision.Sees).
func (f *Filter) Matches(e Event) bool {
	a := f.alert
	if a.Spec.Suspend {
		return false
	}
	if a.Spec.EventSeverity == SeverityError && e.Severity != SeverityError {
		return false
	}
	selected := false
	for _, s := range a.Spec.EventSources {
		if sourceSelects(s, a.Namespace, e) {
			selected = true
			break
		}
	}
	if !selected {
		return false
	}
	if len(f.include) > 0 {
		in := false
		for _, re := range f.include {
			if re.MatchString(e.Message) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, re := range f.exclude {
		if re.MatchString(e.Message) {
			return false
		}
	}
	return true
}

func sourceSelects(s notificationv1.EventSource, alertNS string, e Event) bool {
	if s.Kind != e.Kind {
		return false
	}
	if s.Kind != "Cluster" {
		ns := s.Namespace
		if ns == "" {
			ns = alertNS
		}
		if ns != e.Namespace {
			return false
		}
	}
	if s.Name != "*" {
		return s.Name == e.Name
	}
	return labels.SelectorFromSet(s.MatchLabels).Matches(labels.Set(e.Labels))
}
