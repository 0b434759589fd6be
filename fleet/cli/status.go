package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

// FleetStatus is what `flotilla status -o json` prints.
type FleetStatus struct {
	Clusters       []ClusterSummary       `json:"clusters"`
	Groups         []GroupSummary         `json:"groups"`
	Sources        []SourceSummary        `json:"sources"`
	Kustomizations []KustomizationSummary `json:"kustomizations"`
	HelmReleases   []HelmReleaseSummary   `json:"helmReleases"`
	// Agents is the agents' own upgrade (the AgentRollout), when the hub offers one.
	Agents *AgentsSummary `json:"agents,omitempty"`
	// Missing names the kinds the hub does not serve (CRDs not installed).
	Missing []string `json:"missing,omitempty"`
}

// ClusterSummary is one Cluster's health.
type ClusterSummary struct {
	Name              string            `json:"name"`
	Ready             string            `json:"ready"`
	Message           string            `json:"message,omitempty"`
	LastHeartbeatTime *time.Time        `json:"lastHeartbeatTime,omitempty"`
	HeartbeatAge      string            `json:"heartbeatAge,omitempty"`
	KubernetesVersion string            `json:"kubernetesVersion,omitempty"`
	AgentVersion      string            `json:"agentVersion,omitempty"`
	Paused            bool              `json:"paused,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Assignments       Counts            `json:"assignments"`
}

// Counts are Assignments by state. Unlike the API's, zeros are printed, so that
// scripts read numbers, never nulls.
type Counts struct {
	Total  int32 `json:"total"`
	Ready  int32 `json:"ready"`
	Failed int32 `json:"failed"`
}

// RolloutCounts are a deployment's targeted clusters by rollout state.
type RolloutCounts struct {
	Targeted int32 `json:"targeted"`
	Applied  int32 `json:"applied"`
	Ready    int32 `json:"ready"`
	Failed   int32 `json:"failed"`
}

// MemberCounts are a group's clusters.
type MemberCounts struct {
	Total int32 `json:"total"`
	Ready int32 `json:"ready"`
}

// GroupSummary is one ClusterGroup's roll-up.
type GroupSummary struct {
	Name        string       `json:"name"`
	Ready       string       `json:"ready"`
	Message     string       `json:"message,omitempty"`
	Clusters    MemberCounts `json:"clusters"`
	Assignments Counts       `json:"assignments"`
}

// SourceSummary is one source's last fetch.
type SourceSummary struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Ready     string `json:"ready"`
	Message   string `json:"message,omitempty"`
	URL       string `json:"url"`
	Revision  string `json:"revision,omitempty"`
	Suspended bool   `json:"suspended,omitempty"`
}

// KustomizationSummary is one Kustomization's rollout over the fleet.
type KustomizationSummary struct {
	Namespace    string               `json:"namespace"`
	Name         string               `json:"name"`
	Ready        string               `json:"ready"`
	Message      string               `json:"message,omitempty"`
	Revision     string               `json:"revision,omitempty"`
	Suspended    bool                 `json:"suspended,omitempty"`
	Clusters     RolloutCounts        `json:"clusters"`
	FirstFailure *meta.ClusterFailure `json:"firstFailure,omitempty"`
}

// HelmReleaseSummary is one HelmRelease's rollout over the fleet.
type HelmReleaseSummary struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Ready     string `json:"ready"`
	Message   string `json:"message,omitempty"`
	Chart     string `json:"chart"`
	// Version is the chart version the clusters are given (status.lastAppliedRevision).
	Version   string        `json:"version,omitempty"`
	Suspended bool          `json:"suspended,omitempty"`
	Clusters  RolloutCounts `json:"clusters"`
	// ChartVersions counts the targeted clusters by the chart version they run, most
	// common first (at most 16, as the hub keeps them).
	ChartVersions []VersionCount       `json:"chartVersions"`
	FirstFailure  *meta.ClusterFailure `json:"firstFailure,omitempty"`
}

// AgentsSummary is the AgentRollout: the agent image offered to the fleet and how
// many clusters run which agent version.
type AgentsSummary struct {
	Image    string        `json:"image"`
	Ready    string        `json:"ready"`
	Message  string        `json:"message,omitempty"`
	Clusters RolloutCounts `json:"clusters"`
	// Versions counts clusters by the agent version their heartbeat reports.
	Versions     []VersionCount       `json:"versions"`
	FirstFailure *meta.ClusterFailure `json:"firstFailure,omitempty"`
}

// VersionCount is how many clusters run one chart (or agent) version.
type VersionCount struct {
	Version  string `json:"version"`
	Clusters int32  `json:"clusters"`
}

func newStatusCommand(g *globals) *cobra.Command {
	var (
		output string
		watch  bool
		every  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the fleet on one screen: clusters, groups, sources and deployments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("unknown output format %q: use json", output)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			show := func() error {
				s, err := collectStatus(cmd.Context(), c)
				if err != nil {
					return err
				}
				if output == "json" {
					return printDoc(g, s, "json")
				}
				return writeStatus(g.out, s)
			}
			if !watch {
				return show()
			}
			for {
				fmt.Fprint(g.out, "\x1b[H\x1b[2J") // home and clear, like watch(1)
				fmt.Fprintf(g.out, "Every %s: flotilla status\t%s\n\n", every, time.Now().Format(time.TimeOnly))
				if err := show(); err != nil {
					fmt.Fprintln(g.out, "Error:", err)
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (default: tables)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print again every --interval until interrupted")
	cmd.Flags().DurationVar(&every, "interval", 2*time.Second, "with --watch, time between prints")
	return cmd
}

// collectStatus reads every Cluster, ClusterGroup, source, Kustomization and
// HelmRelease.
func collectStatus(ctx context.Context, c client.Client) (*FleetStatus, error) {
	s := &FleetStatus{
		Clusters: []ClusterSummary{}, Groups: []GroupSummary{}, Sources: []SourceSummary{},
		Kustomizations: []KustomizationSummary{}, HelmReleases: []HelmReleaseSummary{},
	}
	// A kind the hub does not serve is reported, not fatal: the rest is still useful.
	list := func(l client.ObjectList, name string) (bool, error) {
		err := c.List(ctx, l)
		if apimeta.IsNoMatchError(err) {
			s.Missing = append(s.Missing, name)
			return false, nil
		}
		return err == nil, err
	}

	var clusters fleetv1.ClusterList
	if ok, err := list(&clusters, "clusters"); err != nil {
		return nil, err
	} else if ok {
		objs, _ := objects(&clusters)
		for _, o := range objs {
			cl := o.(*fleetv1.Cluster)
			ready, msg := readyOf(cl)
			sum := ClusterSummary{
				Name: cl.Name, Ready: ready, Message: msg, Paused: cl.Spec.Paused, Labels: cl.Labels,
				KubernetesVersion: cl.Status.KubernetesVersion, AgentVersion: cl.Status.AgentVersion,
				Assignments: Counts(cl.Status.Assignments),
			}
			if hb := cl.Status.LastHeartbeatTime; hb != nil {
				t := hb.Time
				sum.LastHeartbeatTime, sum.HeartbeatAge = &t, ago(hb)
			}
			s.Clusters = append(s.Clusters, sum)
		}
	}

	var groups fleetv1.ClusterGroupList
	if ok, err := list(&groups, "clustergroups"); err != nil {
		return nil, err
	} else if ok {
		objs, _ := objects(&groups)
		for _, o := range objs {
			gr := o.(*fleetv1.ClusterGroup)
			ready, msg := readyOf(gr)
			s.Groups = append(s.Groups, GroupSummary{
				Name: gr.Name, Ready: ready, Message: msg,
				Clusters:    MemberCounts(gr.Status.Clusters),
				Assignments: Counts(gr.Status.Assignments),
			})
		}
	}

	var repos sourcev1.GitRepositoryList
	if ok, err := list(&repos, "gitrepositories"); err != nil {
		return nil, err
	} else if ok {
		objs, _ := objects(&repos)
		for _, o := range objs {
			r := o.(*sourcev1.GitRepository)
			s.Sources = append(s.Sources, sourceSummary(sourcev1.GitRepositoryKind, r, r.Spec.URL, r.Status.Artifact))
		}
	}

	var helmRepos sourcev1.HelmRepositoryList
	if ok, err := list(&helmRepos, "helmrepositories"); err != nil {
		return nil, err
	} else if ok {
		objs, _ := objects(&helmRepos)
		for _, o := range objs {
			r := o.(*sourcev1.HelmRepository)
			s.Sources = append(s.Sources, sourceSummary(sourcev1.HelmRepositoryKind, r, r.Spec.URL, r.Status.Artifact))
		}
	}

	var ociRepos sourcev1.OCIRepositoryList
	if ok, err := list(&ociRepos, "ocirepositories"); err != nil {
		return nil, err
	} else if ok {
		objs, _ := objects(&ociRepos)
		for _, o := range objs {
			r := o.(*sourcev1.OCIRepository)
			s.Sources = append(s.Sources, sourceSummary(sourcev1.OCIRepositoryKind, r, r.Spec.URL, r.Status.Artifact))
		}
	}

	var kss deliveryv1.KustomizationList
	if ok, err := list(&kss, "kustomizations"); err != nil {
		return nil, err
	} else if ok {
		objs, _ := objects(&kss)
		for _, o := range objs {
			k := o.(*deliveryv1.Kustomization)
			ready, msg := readyOf(k)
			sum := KustomizationSummary{
				Namespace: k.Namespace, Name: k.Name, Ready: ready, Message: msg,
				Revision: k.Status.LastAppliedRevision, Suspended: k.Spec.Suspend, Clusters: RolloutCounts(k.Status.Clusters),
			}
			if len(k.Status.Failures) > 0 {
				f := k.Status.Failures[0]
				sum.FirstFailure = &f
			}
			s.Kustomizations = append(s.Kustomizations, sum)
		}
	}

	var hrs deliveryv1.HelmReleaseList
	if ok, err := list(&hrs, "helmreleases"); err != nil {
		return nil, err
	} else if ok {
		objs, _ := objects(&hrs)
		for _, o := range objs {
			s.HelmReleases = append(s.HelmReleases, helmReleaseSummary(o.(*deliveryv1.HelmRelease)))
		}
	}

	var ars fleetv1.AgentRolloutList
	if ok, err := list(&ars, "agentrollouts"); err != nil {
		return nil, err
	} else if ok && len(ars.Items) > 0 {
		a := &ars.Items[0] // a singleton: the API server admits only flotilla-agent
		ready, msg := readyOf(a)
		sum := &AgentsSummary{Image: a.Spec.Image, Ready: ready, Message: msg,
			Clusters: RolloutCounts(a.Status.Clusters), Versions: []VersionCount{}}
		for _, v := range a.Status.AgentVersions {
			sum.Versions = append(sum.Versions, VersionCount(v))
		}
		if len(a.Status.Failures) > 0 {
			f := a.Status.Failures[0]
			sum.FirstFailure = &f
		}
		s.Agents = sum
	}
	return s, nil
}

func sourceSummary(kind string, o client.Object, url string, a *meta.Artifact) SourceSummary {
	ready, msg := readyOf(o)
	sum := SourceSummary{
		Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName(),
		Ready: ready, Message: msg, URL: url, Suspended: suspended(o),
	}
	if a != nil {
		sum.Revision = a.Revision
	}
	return sum
}

func helmReleaseSummary(h *deliveryv1.HelmRelease) HelmReleaseSummary {
	ready, msg := readyOf(h)
	sum := HelmReleaseSummary{
		Namespace: h.Namespace, Name: h.Name, Ready: ready, Message: msg,
		Chart: h.Spec.Chart.Chart, Version: h.Status.LastAppliedRevision, Suspended: h.Spec.Suspend,
		Clusters: RolloutCounts(h.Status.Clusters), ChartVersions: []VersionCount{},
	}
	for _, v := range h.Status.ChartVersions {
		sum.ChartVersions = append(sum.ChartVersions, VersionCount(v))
	}
	if len(h.Status.Failures) > 0 {
		f := h.Status.Failures[0]
		sum.FirstFailure = &f
	}
	return sum
}

// writeStatus prints the status as five short tables.
func writeStatus(w io.Writer, s *FleetStatus) error {
	section := func(title string, empty bool) bool {
		fmt.Fprintln(w, title)
		if empty {
			fmt.Fprintln(w, "  (none)")
		}
		return !empty
	}

	if section("CLUSTERS", len(s.Clusters) == 0) {
		t := newTable(w, "NAME", "READY", "HEARTBEAT", "KUBERNETES", "ASSIGNMENTS", "MESSAGE")
		for _, c := range s.Clusters {
			msg := ""
			if c.Ready != "True" {
				msg = c.Message
			}
			if c.Paused {
				msg = "paused " + msg
			}
			hb := c.HeartbeatAge
			if hb != "" {
				hb += " ago"
			}
			t.row(c.Name, c.Ready, hb, c.KubernetesVersion, counts(c.Assignments), truncate(msg, 80))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)

	if section("GROUPS", len(s.Groups) == 0) {
		t := newTable(w, "NAME", "READY", "CLUSTERS", "ASSIGNMENTS")
		for _, g := range s.Groups {
			t.row(g.Name, g.Ready, fmt.Sprintf("%d/%d ready", g.Clusters.Ready, g.Clusters.Total), counts(g.Assignments))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)

	if section("SOURCES", len(s.Sources) == 0) {
		t := newTable(w, "KIND", "NAME", "READY", "REVISION", "MESSAGE")
		for _, r := range s.Sources {
			msg := ""
			if r.Ready != "True" || r.Suspended {
				msg = r.Message
			}
			t.row(r.Kind, r.Namespace+"/"+r.Name, r.Ready, shortRevision(r.Revision), truncate(msg, 80))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)

	if section("KUSTOMIZATIONS", len(s.Kustomizations) == 0) {
		t := newTable(w, "NAME", "READY", "REVISION", "TARGETED", "APPLIED", "HEALTHY", "FAILED", "MESSAGE")
		for _, k := range s.Kustomizations {
			msg := ""
			switch {
			case k.FirstFailure != nil:
				msg = k.FirstFailure.Cluster + ": " + k.FirstFailure.Message
			case k.Ready != "True" || k.Suspended:
				msg = k.Message
			}
			c := k.Clusters
			t.row(k.Namespace+"/"+k.Name, k.Ready, shortRevision(k.Revision),
				itoa(c.Targeted), itoa(c.Applied), itoa(c.Ready), itoa(c.Failed), truncate(msg, 80))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)

	if section("HELMRELEASES", len(s.HelmReleases) == 0) {
		t := newTable(w, "NAME", "READY", "CHART", "VERSION", "TARGETED", "APPLIED", "HEALTHY", "FAILED", "RUNNING", "MESSAGE")
		for _, h := range s.HelmReleases {
			msg := ""
			switch {
			case h.FirstFailure != nil:
				msg = h.FirstFailure.Cluster + ": " + h.FirstFailure.Message
			case h.Ready != "True" || h.Suspended:
				msg = h.Message
			}
			c := h.Clusters
			t.row(h.Namespace+"/"+h.Name, h.Ready, h.Chart, h.Version,
				itoa(c.Targeted), itoa(c.Applied), itoa(c.Ready), itoa(c.Failed), versionCounts(h.ChartVersions), truncate(msg, 80))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if a := s.Agents; a != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "AGENTS")
		msg := ""
		switch {
		case a.FirstFailure != nil:
			msg = a.FirstFailure.Cluster + ": " + a.FirstFailure.Message
		case a.Ready != "True":
			msg = a.Message
		}
		c := a.Clusters
		t := newTable(w, "IMAGE", "READY", "TARGETED", "UPGRADED", "FAILED", "RUNNING", "MESSAGE")
		t.row(a.Image, a.Ready, itoa(c.Targeted), itoa(c.Ready), itoa(c.Failed), versionCounts(a.Versions), truncate(msg, 80))
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(s.Missing) > 0 {
		fmt.Fprintf(w, "\nThe hub does not serve %v: are the Flotilla CRDs installed?\n", s.Missing)
	}
	return nil
}

// versionCounts is how many clusters run which chart version, "0.2.0×3,0.1.0×1",
// with at most three versions named.
func versionCounts(vs []VersionCount) string {
	var parts []string
	for i, v := range vs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("+%d more", len(vs)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s×%d", v.Version, v.Clusters))
	}
	return strings.Join(parts, ",")
}

func counts(a Counts) string {
	return fmt.Sprintf("%d (%d ready, %d failed)", a.Total, a.Ready, a.Failed)
}
