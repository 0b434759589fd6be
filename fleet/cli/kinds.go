package cli

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
)

// kind is what `flotilla get` knows of one Flotilla kind.
type kind struct {
	names      []string // the plural first, then the other names users type
	namespaced bool
	newList    func() client.ObjectList
	columns    []string // between NAME and READY
	row        func(client.Object) []string
}

var kinds = []kind{
	{
		names:      []string{"gitrepositories", "gitrepository", "gitrepo", "gitrepos"},
		namespaced: true,
		newList:    func() client.ObjectList { return &sourcev1.GitRepositoryList{} },
		columns:    []string{"URL", "REVISION"},
		row: func(o client.Object) []string {
			r := o.(*sourcev1.GitRepository)
			rev := ""
			if r.Status.Artifact != nil {
				rev = shortRevision(r.Status.Artifact.Revision)
			}
			return []string{r.Spec.URL, rev}
		},
	},
	{
		names:      []string{"helmrepositories", "helmrepository", "helmrepo", "helmrepos"},
		namespaced: true,
		newList:    func() client.ObjectList { return &sourcev1.HelmRepositoryList{} },
		columns:    []string{"URL", "REVISION"},
		row: func(o client.Object) []string {
			r := o.(*sourcev1.HelmRepository)
			rev := ""
			if r.Status.Artifact != nil {
				rev = shortRevision(r.Status.Artifact.Revision)
			}
			return []string{r.Spec.URL, rev}
		},
	},
	{
		names:      []string{"ocirepositories", "ocirepository", "ocirepo", "ocirepos"},
		namespaced: true,
		newList:    func() client.ObjectList { return &sourcev1.OCIRepositoryList{} },
		columns:    []string{"URL", "REVISION"},
		row: func(o client.Object) []string {
			r := o.(*sourcev1.OCIRepository)
			rev := ""
			if r.Status.Artifact != nil {
				rev = shortRevision(r.Status.Artifact.Revision)
			}
			return []string{r.Spec.URL, rev}
		},
	},
	{
		names:      []string{"kustomizations", "kustomization", "ks"},
		namespaced: true,
		newList:    func() client.ObjectList { return &deliveryv1.KustomizationList{} },
		columns:    []string{"REVISION", "TARGETED", "APPLIED", "HEALTHY", "FAILED"},
		row: func(o client.Object) []string {
			k := o.(*deliveryv1.Kustomization)
			c := k.Status.Clusters
			return []string{shortRevision(k.Status.LastAppliedRevision), itoa(c.Targeted), itoa(c.Applied), itoa(c.Ready), itoa(c.Failed)}
		},
	},
	{
		names:      []string{"helmreleases", "helmrelease", "hr"},
		namespaced: true,
		newList:    func() client.ObjectList { return &deliveryv1.HelmReleaseList{} },
		columns:    []string{"CHART", "VERSION", "TARGETED", "APPLIED", "HEALTHY", "FAILED"},
		row: func(o client.Object) []string {
			h := o.(*deliveryv1.HelmRelease)
			c := h.Status.Clusters
			return []string{h.Spec.Chart.Chart, h.Status.LastAppliedRevision, itoa(c.Targeted), itoa(c.Applied), itoa(c.Ready), itoa(c.Failed)}
		},
	},
	{
		names:   []string{"clusters", "cluster", "fcluster", "fclusters"},
		newList: func() client.ObjectList { return &fleetv1.ClusterList{} },
		columns: []string{"ASSIGNMENTS", "HEALTHY", "FAILED", "HEARTBEAT", "KUBERNETES"},
		row: func(o client.Object) []string {
			c := o.(*fleetv1.Cluster)
			a := c.Status.Assignments
			return []string{itoa(a.Total), itoa(a.Ready), itoa(a.Failed), ago(c.Status.LastHeartbeatTime), c.Status.KubernetesVersion}
		},
	},
	{
		names:   []string{"clustergroups", "clustergroup", "cgroup", "cgroups"},
		newList: func() client.ObjectList { return &fleetv1.ClusterGroupList{} },
		columns: []string{"CLUSTERS", "CLUSTERS-READY", "ASSIGNMENTS", "FAILED"},
		row: func(o client.Object) []string {
			g := o.(*fleetv1.ClusterGroup)
			s := g.Status
			return []string{itoa(s.Clusters.Total), itoa(s.Clusters.Ready), itoa(s.Assignments.Total), itoa(s.Assignments.Failed)}
		},
	},
	{
		names:   []string{"agentrollouts", "agentrollout", "ar"},
		newList: func() client.ObjectList { return &fleetv1.AgentRolloutList{} },
		columns: []string{"IMAGE", "TARGETED", "UPGRADED", "FAILED", "VERSIONS"},
		row: func(o client.Object) []string {
			a := o.(*fleetv1.AgentRollout)
			c := a.Status.Clusters
			var versions []string
			for _, v := range a.Status.AgentVersions {
				versions = append(versions, fmt.Sprintf("%s=%d", v.Version, v.Clusters))
			}
			return []string{a.Spec.Image, itoa(c.Targeted), itoa(c.Ready), itoa(c.Failed), strings.Join(versions, ",")}
		},
	},
	{
		names:   []string{"tenants", "tenant"},
		newList: func() client.ObjectList { return &tenancyv1.TenantList{} },
		columns: []string{"NAMESPACES", "CLUSTERS", "CLUSTERS-READY"},
		row: func(o client.Object) []string {
			t := o.(*tenancyv1.Tenant)
			return []string{strings.Join(t.Spec.Namespaces, ","), itoa(t.Status.Clusters.Total), itoa(t.Status.Clusters.Ready)}
		},
	},
	{
		names:      []string{"assignments", "assignment", "asg"},
		namespaced: true,
		newList:    func() client.ObjectList { return &fleetv1.AssignmentList{} },
		columns:    []string{"CLUSTER", "OWNER", "REVISION", "OBJECTS"},
		row: func(o client.Object) []string {
			a := o.(*fleetv1.Assignment)
			cluster := a.Labels[fleetv1.ClusterLabel]
			if cluster == "" {
				cluster = strings.TrimPrefix(a.Namespace, fleetv1.ClusterNamespacePrefix)
			}
			owner := a.Spec.Owner.Kind + "/" + a.Spec.Owner.Namespace + "/" + a.Spec.Owner.Name
			return []string{cluster, owner, shortRevision(a.Spec.Artifact.Revision), itoa(a.Status.Inventory)}
		},
	},
	{
		names:      []string{"providers", "provider"},
		namespaced: true,
		newList:    func() client.ObjectList { return &notificationv1.ProviderList{} },
		columns:    []string{"TYPE", "SUSPENDED"},
		row: func(o client.Object) []string {
			p := o.(*notificationv1.Provider)
			return []string{p.Spec.Type, strconv.FormatBool(p.Spec.Suspend)}
		},
	},
	{
		names:      []string{"alerts", "alert"},
		namespaced: true,
		newList:    func() client.ObjectList { return &notificationv1.AlertList{} },
		columns:    []string{"PROVIDER", "SEVERITY", "SUSPENDED"},
		row: func(o client.Object) []string {
			a := o.(*notificationv1.Alert)
			return []string{a.Spec.ProviderRef.Name, a.Spec.EventSeverity, strconv.FormatBool(a.Spec.Suspend)}
		},
	},
	{
		names:      []string{"receivers", "receiver", "rcv"},
		namespaced: true,
		newList:    func() client.ObjectList { return &notificationv1.ReceiverList{} },
		columns:    []string{"TYPE", "PATH", "SUSPENDED"},
		row: func(o client.Object) []string {
			r := o.(*notificationv1.Receiver)
			return []string{r.Spec.Type, r.Status.WebhookPath, strconv.FormatBool(r.Spec.Suspend)}
		},
	},
}

func findKind(name string) (kind, error) {
	name = strings.ToLower(name)
	var known []string
	for _, k := range kinds {
		for _, n := range k.names {
			if n == name {
				return k, nil
			}
		}
		known = append(known, k.names[0])
	}
	sort.Strings(known)
	return kind{}, fmt.Errorf("unknown kind %q: use one of %s", name, strings.Join(known, ", "))
}

// conditioned is every Flotilla object: it has status conditions.
type conditioned interface {
	client.Object
	GetConditions() []metav1.Condition
}

// readyOf returns the Ready condition's status and message, with "Unknown" when the
// controller has not written it yet, and says when the object is suspended.
func readyOf(o client.Object) (status, message string) {
	status = string(metav1.ConditionUnknown)
	if r := apimeta.FindStatusCondition(conditionsOf(o), meta.ReadyCondition); r != nil {
		status, message = string(r.Status), r.Message
	}
	if suspended(o) {
		word := "suspended: "
		if _, ok := o.(*fleetv1.Cluster); ok {
			word = "paused: "
		}
		message = word + message
	}
	return status, message
}

// conditionsOf returns an object's status.conditions, typed or unstructured.
func conditionsOf(o client.Object) []metav1.Condition {
	switch t := o.(type) {
	case conditioned:
		return t.GetConditions()
	case *unstructured.Unstructured:
		raw, _, _ := unstructured.NestedSlice(t.Object, "status", "conditions")
		var out []metav1.Condition
		for _, r := range raw {
			m, ok := r.(map[string]any)
			if !ok {
				continue
			}
			var c metav1.Condition
			if runtime.DefaultUnstructuredConverter.FromUnstructured(m, &c) == nil {
				out = append(out, c)
			}
		}
		return out
	}
	return nil
}

func suspended(o client.Object) bool {
	switch t := o.(type) {
	case *unstructured.Unstructured:
		s, _, _ := unstructured.NestedBool(t.Object, "spec", "suspend")
		return s
	case *fleetv1.Cluster:
		return t.Spec.Paused
	case *sourcev1.GitRepository:
		return t.Spec.Suspend
	case *sourcev1.HelmRepository:
		return t.Spec.Suspend
	case *sourcev1.OCIRepository:
		return t.Spec.Suspend
	case *deliveryv1.Kustomization:
		return t.Spec.Suspend
	case *deliveryv1.HelmRelease:
		return t.Spec.Suspend
	}
	return false
}

// shortRevision cuts main@sha1:<40 hex> to 12 hex digits, as wide as a table allows.
func shortRevision(rev string) string {
	i := strings.LastIndex(rev, ":")
	if i < 0 || len(rev)-i-1 <= 12 {
		return rev
	}
	return rev[:i+1+12]
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// ago is how long ago t was, kubectl-style ("5s", "3m"), or "-" when unknown.
func ago(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

func age(o client.Object) string {
	ts := o.GetCreationTimestamp()
	return ago(&ts)
}

// truncate keeps table cells on one line.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
