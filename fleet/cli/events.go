package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// flotillaGroupSuffix ends every Flotilla API group.
const flotillaGroupSuffix = ".flotilla.dev"

func newEventsCommand(g *globals) *cobra.Command {
	var (
		all       bool
		forObj    string
		watchFlag bool
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List the hub's Events about Flotilla objects",
		Long: `List the Events the hub recorded about Flotilla objects (sources, deployments,
Clusters, Tenants, Assignments, notification kinds), oldest first. --for KIND/NAME keeps
those of one object (KIND as flotilla get takes it); --watch goes on printing new ones
until interrupted.`,
		Example: `  flotilla events -A
  flotilla events --for kustomization/podinfo -n apps
  flotilla events --for cluster/prod-eu-1 --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var want *eventFilter
			if forObj != "" {
				kindName, name, ok := strings.Cut(forObj, "/")
				if !ok || name == "" {
					return fmt.Errorf("--for %q: want KIND/NAME, e.g. kustomization/podinfo", forObj)
				}
				k, err := findKind(kindName)
				if err != nil {
					return err
				}
				want = &eventFilter{kind: k, name: name}
			}
			ns := ""
			if !all {
				var err error
				if ns, err = g.ns(); err != nil {
					return err
				}
				// A cluster-scoped object's Events are in the default namespace.
				if want != nil && !want.kind.namespaced {
					ns = metav1.NamespaceDefault
				}
			}
			cfg, err := g.restConfig()
			if err != nil {
				return err
			}
			c, err := client.NewWithWatch(cfg, client.Options{})
			if err != nil {
				return err
			}
			return printEvents(cmd.Context(), g, c, ns, all, want, watchFlag)
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "Events of every namespace")
	cmd.Flags().StringVar(&forObj, "for", "", "only the Events of this object: KIND/NAME")
	cmd.Flags().BoolVarP(&watchFlag, "watch", "w", false, "after listing, print new Events as they come")
	_ = cmd.RegisterFlagCompletionFunc("for", func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		kindName, prefix, ok := strings.Cut(toComplete, "/")
		if !ok {
			var out []string
			for _, n := range kindNames() {
				if strings.HasPrefix(n, toComplete) {
					out = append(out, strings.TrimSuffix(n, "s")+"/")
				}
			}
			return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
		}
		k, err := findKind(kindName)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []string
		for _, n := range objectNames(cmd, g, k, prefix) {
			out = append(out, kindName+"/"+n)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// eventFilter keeps the Events of one object.
type eventFilter struct {
	kind kind
	name string
}

// matches reports whether e is about a Flotilla object and, with f, about f's.
func (f *eventFilter) matches(e *eventsv1.Event) bool {
	r := e.Regarding
	group, _, _ := strings.Cut(r.APIVersion, "/")
	if !strings.HasSuffix(group, flotillaGroupSuffix) {
		return false
	}
	if f == nil {
		return true
	}
	if r.Name != f.name {
		return false
	}
	k, err := findKind(r.Kind)
	return err == nil && k.names[0] == f.kind.names[0]
}

func eventTime(e *eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func printEvents(ctx context.Context, g *globals, c client.WithWatch, ns string, all bool, f *eventFilter, follow bool) error {
	var list eventsv1.EventList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	var events []*eventsv1.Event
	for i := range list.Items {
		if f.matches(&list.Items[i]) {
			events = append(events, &list.Items[i])
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	header := []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}
	if all {
		header = append([]string{"NAMESPACE"}, header...)
	}
	t := newTable(g.out, header...)
	row := func(e *eventsv1.Event) {
		ts := metav1.NewTime(eventTime(e))
		obj := strings.ToLower(e.Regarding.Kind) + "/" + e.Regarding.Name
		cells := []string{ago(&ts), e.Type, e.Reason, obj, strings.Join(strings.Fields(e.Note), " ")}
		if all {
			cells = append([]string{e.Namespace}, cells...)
		}
		t.row(cells...)
	}
	for _, e := range events {
		row(e)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if !follow {
		if len(events) == 0 {
			fmt.Fprintln(g.errOut, "No events found.")
		}
		return nil
	}
	w, err := c.Watch(ctx, &eventsv1.EventList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			if e, ok := ev.Object.(*eventsv1.Event); ok && f.matches(e) {
				row(e)
				if err := t.flush(); err != nil {
					return err
				}
			}
		}
	}
}
