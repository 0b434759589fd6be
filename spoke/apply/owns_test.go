package apply

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestOwns(t *testing.T) {
	obj := func(kind, holder string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind(kind)
		if holder != "" {
			u.SetAnnotations(map[string]string{AssignmentAnnotation: holder})
		}
		return u
	}
	for _, tc := range []struct {
		name  string
		live  *unstructured.Unstructured
		opts  Options
		taken bool
	}{
		{"ours", obj("ConfigMap", "ns/mine"), Options{Owner: "ns/mine"}, true},
		{"another deployment's", obj("ConfigMap", "ns/other"), Options{Owner: "ns/mine"}, false},
		{"another deployment's, even with adopt", obj("ConfigMap", "ns/other"), Options{Owner: "ns/mine", Adopt: true}, false},
		{"there before, no adopt", obj("ConfigMap", ""), Options{Owner: "ns/mine"}, false},
		{"there before, adopt", obj("ConfigMap", ""), Options{Owner: "ns/mine", Adopt: true}, true},
		{"a shared Namespace", obj("Namespace", "ns/other"), Options{Owner: "ns/mine"}, true},
		{"a Namespace there before", obj("Namespace", ""), Options{Owner: "ns/mine"}, true},
	} {
		err := owns(tc.live, tc.opts)
		if (err == nil) != tc.taken || (err != nil && !errors.Is(err, ErrOwnedElsewhere)) {
			t.Errorf("%s: %v, want taken=%v", tc.name, err, tc.taken)
		}
	}
}
