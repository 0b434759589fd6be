package fleetbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// sample is one Prometheus sample: its labels and value.
type sample struct {
	labels map[string]string
	value  float64
}

// scrape reads a Prometheus text endpoint and returns the samples of the names
// wanted (all when none), by metric name.
func scrape(ctx context.Context, hc *http.Client, url string, names ...string) (map[string][]sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return parseText(resp.Body, names...)
}

// parseText parses the Prometheus text format, enough of it for counters and gauges.
func parseText(r io.Reader, names ...string) (map[string][]sample, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string][]sample{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		labels := map[string]string{}
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			parseLabels(line[i+1:j], labels)
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, rest = f[0], f[1]
		}
		if len(want) > 0 && !want[name] {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] = append(out[name], sample{labels: labels, value: v})
	}
	return out, sc.Err()
}

func parseLabels(s string, into map[string]string) {
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return
		}
		key := strings.TrimSpace(strings.TrimPrefix(s[:eq], ","))
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			val.WriteByte(s[i])
		}
		into[key] = val.String()
		s = strings.TrimPrefix(s[min(i+1, len(s)):], ",")
	}
}

// sum adds the samples whose labels match every key of match.
func sum(samples []sample, match map[string]string) float64 {
	var t float64
next:
	for _, s := range samples {
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		t += s.value
	}
	return t
}

// requests is a snapshot of kube-apiserver's apiserver_request_total.
type requests struct {
	at      time.Time
	samples []sample
	// durSum and durCount are apiserver_request_duration_seconds' sums and counts.
	durSum, durCount []sample
	// terminatedWatchers counts watches the API server closed because their client
	// did not keep up (the client's informer then lags, and watches again).
	terminatedWatchers []sample
}

func apiserverRequests(ctx context.Context, cfg *rest.Config) (requests, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return requests{}, err
	}
	m, err := scrape(ctx, hc, strings.TrimRight(cfg.Host, "/")+"/metrics", "apiserver_request_total",
		"apiserver_request_duration_seconds_sum", "apiserver_request_duration_seconds_count", "apiserver_terminated_watchers_total")
	if err != nil {
		return requests{}, err
	}
	return requests{at: time.Now(), samples: m["apiserver_request_total"],
		durSum: m["apiserver_request_duration_seconds_sum"], durCount: m["apiserver_request_duration_seconds_count"],
		terminatedWatchers: m["apiserver_terminated_watchers_total"]}, nil
}

// latencies returns the mean time kube-apiserver took per request kind between two
// snapshots (apiserver_request_duration_seconds), by "VERB resource[/subresource]".
func latencies(a, b requests) map[string]time.Duration {
	total := func(samples []sample) map[string]float64 {
		out := map[string]float64{}
		for _, s := range samples {
			out[requestKey(s)] += s.value
		}
		return out
	}
	sumA, sumB, countA, countB := total(a.durSum), total(b.durSum), total(a.durCount), total(b.durCount)
	out := map[string]time.Duration{}
	for k, n := range countB {
		if d := n - countA[k]; d > 0 {
			out[k] = time.Duration((sumB[k] - sumA[k]) / d * float64(time.Second))
		}
	}
	return out
}

func requestKey(s sample) string {
	r := s.labels["resource"]
	if sr := s.labels["subresource"]; sr != "" {
		r += "/" + sr
	}
	return s.labels["verb"] + " " + r
}

// rates are request rates between two snapshots.
type rates struct {
	seconds     float64
	reads       float64 // GET, LIST, WATCH per second
	writes      float64 // POST, PUT, PATCH, DELETE, APPLY per second
	byKey       map[string]float64
	clusterSets float64 // Cluster status writes in the window
	leaseWrites float64
	latency     map[string]time.Duration // mean, by key
	// throttled counts answers 429 (API Priority and Fairness turned the request
	// away; client-go sends it again) and failed the 5xx answers, in the window.
	throttled, failed float64
	// terminatedWatchers is how many watches kube-apiserver closed as too slow, by resource.
	terminatedWatchers map[string]float64
	// allWrites counts every write of the window.
	allWrites float64
}

var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true, "DELETECOLLECTION": true}

func ratesBetween(a, b requests) rates {
	key := requestKey
	before := map[string]float64{}
	for _, s := range a.samples {
		before[key(s)+"|"+s.labels["code"]+"|"+s.labels["group"]+"|"+s.labels["scope"]+"|"+s.labels["component"]+"|"+s.labels["dry_run"]+"|"+s.labels["version"]] += s.value
	}
	out := rates{seconds: b.at.Sub(a.at).Seconds(), byKey: map[string]float64{}, latency: latencies(a, b),
		terminatedWatchers: map[string]float64{}}
	for _, x := range b.terminatedWatchers {
		out.terminatedWatchers[x.labels["resource"]] += x.value
	}
	for _, x := range a.terminatedWatchers {
		out.terminatedWatchers[x.labels["resource"]] -= x.value
	}
	for _, s := range b.samples {
		full := key(s) + "|" + s.labels["code"] + "|" + s.labels["group"] + "|" + s.labels["scope"] + "|" + s.labels["component"] + "|" + s.labels["dry_run"] + "|" + s.labels["version"]
		d := s.value - before[full]
		if d <= 0 {
			continue
		}
		out.byKey[key(s)] += d
		switch code := s.labels["code"]; {
		case code == "429":
			out.throttled += d
		case strings.HasPrefix(code, "5"):
			out.failed += d
		}
		switch {
		case writeVerbs[s.labels["verb"]]:
			out.writes += d
			out.allWrites += d
			if s.labels["resource"] == "clusters" && s.labels["subresource"] == "status" {
				out.clusterSets += d
			}
			if s.labels["resource"] == "leases" {
				out.leaseWrites += d
			}
		default:
			out.reads += d
		}
	}
	if out.seconds > 0 {
		out.reads /= out.seconds
		out.writes /= out.seconds
	}
	return out
}

// procStat is a process's resident memory and CPU time, from /proc.
type procStat struct {
	rssBytes int64
	cpu      time.Duration
}

func readProc(pid int) (procStat, error) {
	var ps procStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			ps.rssBytes = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// Fields after the command (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) > 12 {
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		ps.cpu = time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return ps, nil
}

// findProcess returns the pid of the process whose command line holds every one of
// parts, or 0.
func findProcess(parts ...string) int {
	dirs, _ := os.ReadDir("/proc")
next:
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		for _, p := range parts {
			if !strings.Contains(cmd, p) {
				continue next
			}
		}
		return pid
	}
	return 0
}

// cpuOf is the CPU time of a process, zero when it cannot be read.
func cpuOf(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	ps, err := readProc(pid)
	if err != nil {
		return 0
	}
	return ps.cpu
}
