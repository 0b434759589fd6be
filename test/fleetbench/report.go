package fleetbench

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Format prints results as a Markdown table, one column per run, and the busiest
// write paths of each run.
func Format(results []Result) string {
	var b strings.Builder
	row := func(name string, f func(r Result) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, r := range results {
			fmt.Fprintf(&b, " %s |", f(r))
		}
		b.WriteString("\n")
	}
	row("clusters × deployments", func(r Result) string { return fmt.Sprintf("%d × %d", r.Clusters, r.Deployments) })
	b.WriteString("|---|")
	for range results {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	d := func(x time.Duration) string { return x.Round(10 * time.Millisecond).String() }
	row("register + Ready", func(r Result) string { return d(r.Register) })
	row("commit → cluster Ready p50", func(r Result) string { return d(r.P50) })
	row("commit → cluster Ready p99", func(r Result) string { return d(r.P99) })
	row("commit → cluster Ready max", func(r Result) string { return d(r.Max) })
	row("commit → every Kustomization status", func(r Result) string { return d(r.Rollup) })
	row("builds / distinct artifacts", func(r Result) string { return fmt.Sprintf("%d / %d", r.Builds, r.Artifacts) })
	row("hub RSS after rollout", func(r Result) string { return mib(r.HubRSS) })
	row("hub CPU s, rest window", func(r Result) string { return secs(r.HubCPURest, r.HubRSS) })
	row("hub CPU s, rollout", func(r Result) string { return secs(r.HubCPURollout, r.HubRSS) })
	row("CPU s in rollout: kube-apiserver / etcd / bench process", func(r Result) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f", r.APIServerCPU.Seconds(), r.EtcdCPU.Seconds(), r.BenchCPU.Seconds())
	})
	row("kube-apiserver RSS after rollout", func(r Result) string { return mib(r.APIServerRSS) })
	row("API req/s at rest: reads / writes", func(r Result) string { return fmt.Sprintf("%.1f / %.1f", r.Rest.reads, r.Rest.writes) })
	row("  of which Lease writes/s", func(r Result) string { return fmt.Sprintf("%.1f", perSec(r.Rest.leaseWrites, r.Rest.seconds)) })
	row("  Cluster status writes /cluster/min", func(r Result) string {
		return fmt.Sprintf("%.2f", r.Rest.clusterSets/float64(max(1, r.Clusters))/(r.Rest.seconds/60))
	})
	row("  writes beyond Leases /cluster/min", func(r Result) string {
		other := r.Rest.writes*r.Rest.seconds - r.Rest.leaseWrites
		return fmt.Sprintf("%.2f", other/float64(max(1, r.Clusters))/(r.Rest.seconds/60))
	})
	row("API req/s in rollout: reads / writes", func(r Result) string { return fmt.Sprintf("%.1f / %.1f", r.Rollout.reads, r.Rollout.writes) })
	row("  API writes per Assignment in rollout, beyond Leases", func(r Result) string {
		n := float64(max(1, r.Clusters*r.Deployments))
		return fmt.Sprintf("%.2f", (r.Rollout.allWrites-r.Rollout.leaseWrites)/n)
	})
	row("  API answers 429 / 5xx in rollout", func(r Result) string {
		return fmt.Sprintf("%.0f / %.0f", r.Rollout.throttled, r.Rollout.failed)
	})
	row("  watches closed as too slow in rollout", func(r Result) string {
		var parts []string
		for res, n := range r.Rollout.terminatedWatchers {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s %.0f", res, n))
			}
		}
		sort.Strings(parts)
		if len(parts) == 0 {
			return "0"
		}
		return strings.Join(parts, ", ")
	})
	row("hub's own API req/s: rest / rollout", func(r Result) string {
		if r.HubRSS == 0 {
			return "n/a (in-process)"
		}
		return fmt.Sprintf("%.1f / %.1f", r.HubRest, r.HubRollout)
	})
	row("etcd db size", func(r Result) string { return mib(r.EtcdBytes) })
	row("artifact bytes served (rollout)", func(r Result) string { return mib(r.ServedBytes) })
	row("status bytes: Kustomization / Cluster", func(r Result) string {
		return fmt.Sprintf("%d / %d", r.KustomizationStatus, r.ClusterStatus)
	})
	row("Assignment bytes (of which managedFields)", func(r Result) string {
		return fmt.Sprintf("%d (%d)", r.AssignmentBytes, r.AssignmentManagedFields)
	})
	for _, r := range results {
		fmt.Fprintf(&b, "\n%d clusters, writes at rest (per s): %s\n", r.Clusters, top(r.Rest, true))
		fmt.Fprintf(&b, "%d clusters, requests in rollout (per s, mean latency): %s\n", r.Clusters, top(r.Rollout, false))
		if r.Errors != "none" {
			fmt.Fprintf(&b, "%d clusters, simulated agents' errors: %s\n", r.Clusters, r.Errors)
		}
	}
	return b.String()
}

func perSec(n, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return n / seconds
}

// top lists the busiest request kinds of a window.
func top(r rates, writesOnly bool) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range r.byKey {
		verb, _, _ := strings.Cut(k, " ")
		if writesOnly && !writeVerbs[verb] {
			continue
		}
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var parts []string
	for i, e := range all {
		if i == 8 {
			break
		}
		part := fmt.Sprintf("%s %.1f", e.k, perSec(e.v, r.seconds))
		if l, ok := r.latency[e.k]; ok && !writesOnly {
			part += fmt.Sprintf(" (%s)", l.Round(time.Millisecond))
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

func mib(n int64) string {
	if n == 0 {
		return "n/a"
	}
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func secs(d time.Duration, rss int64) string {
	if rss == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}
