package receiver

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

// kinds are the kinds a Receiver may name: those whose controllers reconcile on the
// reconcile-requested-at annotation.
var kinds = map[string]schema.GroupVersion{
	sourcev1.GitRepositoryKind:   sourcev1.GroupVersion,
	sourcev1.HelmRepositoryKind:  sourcev1.GroupVersion,
	sourcev1.OCIRepositoryKind:   sourcev1.GroupVersion,
	deliveryv1.KustomizationKind: deliveryv1.GroupVersion,
	deliveryv1.HelmReleaseKind:   deliveryv1.GroupVersion,
}

// Target is one resource of a Receiver, resolved: its kind and where it is.
type Target struct {
	GVK         schema.GroupVersionKind
	Namespace   string
	Name        string // "*": every object of the kind matching MatchLabels
	MatchLabels map[string]string
}

// NotAllowedError says which resource a Receiver may not name and why.
type NotAllowedError struct{ msg string }

func (e *NotAllowedError) Error() string { return e.msg }

// Targets resolves a Receiver's resources. A resource in another namespace than the
// Receiver's own, or of a kind the hub does not reconcile on request, is an error
// (*NotAllowedError): a Receiver reaches only its own namespace, which is what keeps
// one tenant's Receiver away from another tenant's objects. The API server refuses
// most of it already; this is the hub's own check, made again at every call.
func Targets(rcv *notificationv1.Receiver) ([]Target, error) {
	out := make([]Target, 0, len(rcv.Spec.Resources))
	for i, r := range rcv.Spec.Resources {
		gv, ok := kinds[r.Kind]
		if !ok {
			return nil, &NotAllowedError{fmt.Sprintf("resources[%d]: kind %q is not one the hub reconciles on request", i, r.Kind)}
		}
		if r.APIVersion != "" && r.APIVersion != gv.String() {
			return nil, &NotAllowedError{fmt.Sprintf("resources[%d]: %s is served as %s, not %s", i, r.Kind, gv, r.APIVersion)}
		}
		if r.Namespace != "" && r.Namespace != rcv.Namespace {
			return nil, &NotAllowedError{fmt.Sprintf("resources[%d]: %s %s/%s is outside the Receiver's namespace %s", i, r.Kind, r.Namespace, r.Name, rcv.Namespace)}
		}
		if len(r.MatchLabels) > 0 && r.Name != "*" {
			return nil, &NotAllowedError{fmt.Sprintf("resources[%d]: matchLabels needs name \"*\"", i)}
		}
		out = append(out, Target{GVK: gv.WithKind(r.Kind), Namespace: rcv.Namespace, Name: r.Name, MatchLabels: r.MatchLabels})
	}
	return out, nil
}
