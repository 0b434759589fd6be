package owners

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

// Kind is one deployment kind.
type Kind struct {
	// Kind is the kind name, as in an Assignment's spec.owner.kind.
	Kind string
	// APIVersion is the group/version the hub serves the kind at.
	APIVersion string
	// New returns an empty object of the kind.
	New func() client.Object
	// NewList returns an empty list of the kind.
	NewList func() client.ObjectList
	// Artifact returns the artifact an object of the kind last built, or nil.
	Artifact func(client.Object) *meta.Artifact
}

// Prefix starts the names of the kind's Assignments (fleetv1.AssignmentName).
func (k Kind) Prefix() string { return fleetv1.AssignmentPrefix(k.Kind) }

// Reference names one object of the kind as an Assignment's owner.
func (k Kind) Reference(o client.Object) fleetv1.DeploymentReference {
	return fleetv1.DeploymentReference{
		APIVersion: k.APIVersion, Kind: k.Kind,
		Namespace: o.GetNamespace(), Name: o.GetName(), UID: string(o.GetUID()),
	}
}

// kinds is the registry: a new deployment kind adds one entry here.
var kinds = []Kind{
	{
		Kind:       deliveryv1.KustomizationKind,
		APIVersion: deliveryv1.GroupVersion.String(),
		New:        func() client.Object { return &deliveryv1.Kustomization{} },
		NewList:    func() client.ObjectList { return &deliveryv1.KustomizationList{} },
		Artifact:   func(o client.Object) *meta.Artifact { return o.(*deliveryv1.Kustomization).Status.Artifact },
	},
	{
		Kind:       deliveryv1.HelmReleaseKind,
		APIVersion: deliveryv1.GroupVersion.String(),
		New:        func() client.Object { return &deliveryv1.HelmRelease{} },
		NewList:    func() client.ObjectList { return &deliveryv1.HelmReleaseList{} },
		Artifact:   func(o client.Object) *meta.Artifact { return o.(*deliveryv1.HelmRelease).Status.Artifact },
	},
	{
		// A Tenant deploys its own set-up (namespaces, identity, bindings) to the
		// clusters it reaches, through the same engine.
		Kind:       tenancyv1.TenantKind,
		APIVersion: tenancyv1.GroupVersion.String(),
		New:        func() client.Object { return &tenancyv1.Tenant{} },
		NewList:    func() client.ObjectList { return &tenancyv1.TenantList{} },
		Artifact:   func(o client.Object) *meta.Artifact { return o.(*tenancyv1.Tenant).Status.Artifact },
	},
	{
		// The fleet's own agent (hub/agentrollout): its Deployment on every cluster.
		Kind:       fleetv1.AgentRolloutKind,
		APIVersion: fleetv1.GroupVersion.String(),
		New:        func() client.Object { return &fleetv1.AgentRollout{} },
		NewList:    func() client.ObjectList { return &fleetv1.AgentRolloutList{} },
		Artifact:   func(o client.Object) *meta.Artifact { return o.(*fleetv1.AgentRollout).Status.Artifact },
	},
}

// All returns every registered deployment kind.
func All() []Kind { return append([]Kind(nil), kinds...) }

// Lookup returns the registered kind of that name.
func Lookup(kind string) (Kind, bool) {
	for _, k := range kinds {
		if k.Kind == kind {
			return k, true
		}
	}
	return Kind{}, false
}
