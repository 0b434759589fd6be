package fleetbench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	fregistration "github.com/flotilla-dev/flotilla/api/registration"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/hub/registration"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// Options of one run.
type Options struct {
	// Clusters simulated and Deployments (Kustomizations, each placed on every
	// cluster, each one path of the same Git repository).
	Clusters, Deployments int
	// HubBinary runs bin/flotilla-hub as its own process; empty runs the hub in this
	// process (then its memory and CPU cannot be told apart and are not reported).
	HubBinary string
	// Heartbeat is the simulated agents' Lease renewal interval; the agent's 10s when zero.
	Heartbeat time.Duration
	// RestWindow is how long the fleet is watched at rest; 60s when zero.
	RestWindow time.Duration
	// Timeout bounds each rollout; 15m when zero.
	Timeout time.Duration
	// APIServerGOGC, when set, is the GOGC the control plane's processes (kube-apiserver
	// and etcd) run with; Go's default (100) when empty. kube-apiserver spends about a
	// third of its CPU collecting the JSON it allocates, which is what this trades
	// against its memory.
	APIServerGOGC string
	// ProfileDir receives CPU and heap profiles of a binary hub; none when empty.
	ProfileDir string
	// Logf reports progress; t.Logf when nil.
	Logf func(format string, args ...any)
}

// Result is what one run measured.
type Result struct {
	Clusters, Deployments int
	// Register is the time to register every cluster and see it Ready on the hub.
	Register time.Duration
	// P50, P99 and Max are the times from the commit to a cluster running the new
	// revision on all of its deployments; Rollup until every Kustomization's status
	// says so.
	P50, P99, Max, Rollup time.Duration
	// Builds run for the commit, and the distinct artifacts the fleet then runs.
	Builds, Artifacts int
	// Hub process (binary hub only; zero otherwise).
	HubRSS                    int64
	HubCPURest, HubCPURollout time.Duration
	// API server request rates (all clients), at rest and during the rollout.
	Rest, Rollout rates
	// HubRest and HubRollout are the hub's own API requests per second (binary only).
	HubRest, HubRollout float64
	// EtcdBytes is etcd's database size after the rollout.
	EtcdBytes int64
	// ServedBytes by the artifact server during the rollout.
	ServedBytes int64
	// Status sizes (JSON bytes) of one Kustomization and one Cluster.
	KustomizationStatus, ClusterStatus int
	// AssignmentBytes is one Assignment as the API server stores and sends it (JSON),
	// and AssignmentManagedFields the part of it that is metadata.managedFields:
	// kube-apiserver's cost per write grows with both.
	AssignmentBytes, AssignmentManagedFields int
	// CPU time during the rollout of the hub's kube-apiserver and etcd, and of this
	// process (the simulated clusters, and the hub when in-process).
	APIServerCPU, EtcdCPU, BenchCPU time.Duration
	// APIServerRSS is kube-apiserver's resident memory after the rollout.
	APIServerRSS int64
	// Errors seen by the simulated clusters.
	Errors string
}

// startControlPlane starts the hub's control plane, its processes with GOGC=gogc
// when gogc is set. They inherit this process's environment at start, and nothing
// else starts meanwhile (the hub binary starts later, with GOGC as it was).
func startControlPlane(t testing.TB, gogc string) *controlplane.ControlPlane {
	if gogc == "" {
		return env.StartControlPlane(t, "hub", true)
	}
	prev, had := os.LookupEnv("GOGC")
	os.Setenv("GOGC", gogc)
	defer func() {
		if had {
			os.Setenv("GOGC", prev)
		} else {
			os.Unsetenv("GOGC")
		}
	}()
	return env.StartControlPlane(t, "hub", true)
}

const (
	systemNS = fleetv1.SystemNamespace
	repoName = "fleet"
)

func manifests(deployments, rev int) map[string]string {
	files := map[string]string{}
	for i := range deployments {
		files[fmt.Sprintf("apps/app-%d/config.yaml", i)] = fmt.Sprintf(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%d\n  namespace: default\ndata:\n  revision: %q\n  payload: %q\n",
			i, fmt.Sprint(rev), strings.Repeat("x", 512))
	}
	return files
}

// Run starts a hub and opts.Clusters simulated clusters, deploys opts.Deployments
// Kustomizations to all of them, watches the fleet at rest, makes one commit that
// changes every deployment and measures its rollout.
func Run(t testing.TB, opts Options) Result {
	t.Helper()
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 10 * time.Second
	}
	if opts.RestWindow == 0 {
		opts.RestWindow = time.Minute
	}
	if opts.Timeout == 0 {
		opts.Timeout = 15 * time.Minute
	}
	logf := opts.Logf
	if logf == nil {
		logf = t.Logf
	}
	res := Result{Clusters: opts.Clusters, Deployments: opts.Deployments}
	dir := t.TempDir()
	cp := startControlPlane(t, opts.APIServerGOGC)
	// Cleanups run last first: the simulated clusters stop before the API server.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	admin := cp.Client()
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	git := gitserver.New(t)
	repo := git.CreateRepo(repoName)
	commit1 := repo.Write(manifests(opts.Deployments, 1))
	hub := startHub(t, cp, opts.HubBinary, dir)
	hubHTTP := &http.Client{Timeout: 10 * time.Second}

	gr := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: repoName},
		Spec: sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: gitserver.DefaultBranch},
			Interval: metav1.Duration{Duration: 10 * time.Minute}},
	}
	if err := admin.Create(ctx, gr); err != nil {
		t.Fatal(err)
	}

	// Register every cluster as `flotilla cluster add` and the agent's bootstrap do.
	began := time.Now()
	s := newSink()
	errs := &errorLog{}
	sims := make([]*simCluster, opts.Clusters)
	names := make(chan int)
	var wg sync.WaitGroup
	var regErr error
	var regMu sync.Mutex
	for range 16 {
		wg.Go(func() {
			for i := range names {
				name := fmt.Sprintf("c%05d", i)
				sim, err := register(ctx, admin, name, filepath.Join(dir, "agents", name), opts, s, errs)
				if err != nil {
					regMu.Lock()
					regErr = err
					regMu.Unlock()
					continue
				}
				sim.setWant(opts.Deployments)
				sims[i] = sim
				go sim.run(ctx)
			}
		})
	}
	for i := range opts.Clusters {
		names <- i
	}
	close(names)
	wg.Wait()
	if regErr != nil {
		t.Fatalf("registration: %v", regErr)
	}
	logf("%d clusters registered in %s; waiting for them to be Ready", opts.Clusters, time.Since(began).Round(time.Second))
	waitFor(t, opts.Timeout, "every Cluster Ready", func() (bool, string) {
		var list fleetv1.ClusterList
		if err := admin.List(ctx, &list); err != nil {
			return false, err.Error()
		}
		n := 0
		for i := range list.Items {
			if apimeta.IsStatusConditionTrue(list.Items[i].Status.Conditions, meta.ReadyCondition) {
				n++
			}
		}
		return n == opts.Clusters, fmt.Sprintf("%d/%d Ready", n, opts.Clusters)
	})
	res.Register = time.Since(began)
	logf("%d clusters Ready in %s", opts.Clusters, res.Register.Round(time.Second))

	for i := range opts.Deployments {
		ks := &deliveryv1.Kustomization{
			ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: fmt.Sprintf("app-%d", i)},
			Spec: deliveryv1.KustomizationSpec{
				SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: repoName},
				Path:      fmt.Sprintf("apps/app-%d", i), Prune: true,
				Interval:  metav1.Duration{Duration: 10 * time.Minute},
				Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "fleet"}}},
			},
		}
		if err := admin.Create(ctx, ks); err != nil {
			t.Fatal(err)
		}
	}
	rev1 := gitserver.DefaultBranch + "@sha1:" + commit1
	waitRevision(t, sims, rev1, time.Now(), opts.Timeout)
	logf("first revision on every cluster")

	// At rest: heartbeats only.
	settle := min(opts.RestWindow/2, 20*time.Second)
	time.Sleep(settle)
	restA, hubA, procA := snapshot(t, ctx, cp, hub, hubHTTP)
	profile(ctx, hub, opts.ProfileDir, fmt.Sprintf("rest-%d", opts.Clusters), opts.RestWindow)
	time.Sleep(opts.RestWindow)
	restB, hubB, procB := snapshot(t, ctx, cp, hub, hubHTTP)
	res.Rest = ratesBetween(restA, restB)
	res.HubRest = hubRequests(hubA, hubB, res.Rest.seconds)
	res.HubCPURest = procB.cpu - procA.cpu

	// One commit that changes every deployment; the webhook a Git host would call
	// is a reconcile request on the GitRepository.
	apiPid := findProcess("kube-apiserver", "--secure-port="+portOf(cp.URL()))
	etcdPid := findProcess("etcd", portOf(cp.EtcdURL()))
	apiCPU, etcdCPU, benchCPU := cpuOf(apiPid), cpuOf(etcdPid), cpuOf(os.Getpid())
	rollA, hubC, procC := snapshot(t, ctx, cp, hub, hubHTTP)
	commit2 := repo.Write(manifests(opts.Deployments, 2))
	t0 := time.Now()
	patch := client.MergeFrom(gr.DeepCopy())
	gr.Annotations = map[string]string{meta.ReconcileRequestedAtAnnotation: t0.Format(time.RFC3339Nano)}
	if err := admin.Patch(ctx, gr, patch); err != nil {
		t.Fatal(err)
	}
	profile(ctx, hub, opts.ProfileDir, fmt.Sprintf("rollout-%d", opts.Clusters), 30*time.Second)
	profileAPIServer(ctx, cp, opts.ProfileDir, fmt.Sprintf("apiserver-rollout-%d", opts.Clusters), 15*time.Second)
	if hub.pprofURL != "" && opts.ProfileDir != "" {
		// Where the hub's goroutines wait 10 s into the rollout: on the API server
		// (writes in flight), on a worker, or on the rate limiter.
		time.AfterFunc(10*time.Second, func() {
			saveURL(ctx, hub.pprofURL+"/goroutine?debug=1", filepath.Join(opts.ProfileDir, fmt.Sprintf("goroutines-rollout-%d.txt", opts.Clusters)))
		})
	}
	rev2 := gitserver.DefaultBranch + "@sha1:" + commit2
	lat := waitRevision(t, sims, rev2, t0, opts.Timeout)
	rollB, hubD, procD := snapshot(t, ctx, cp, hub, hubHTTP)
	res.APIServerCPU, res.EtcdCPU, res.BenchCPU = cpuOf(apiPid)-apiCPU, cpuOf(etcdPid)-etcdCPU, cpuOf(os.Getpid())-benchCPU
	res.P50, res.P99, res.Max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	res.Rollout = ratesBetween(rollA, rollB)
	res.HubRollout = hubRequests(hubC, hubD, res.Rollout.seconds)
	res.HubCPURollout = procD.cpu - procC.cpu
	res.HubRSS = procD.rssBytes
	if ps, err := readProc(apiPid); err == nil {
		res.APIServerRSS = ps.rssBytes
	}
	res.Builds = int(first(hubD, hubmetrics.BuildsName) - first(hubC, hubmetrics.BuildsName))
	res.ServedBytes = int64(first(hubD, hubmetrics.ArtifactBytesServedName) - first(hubC, hubmetrics.ArtifactBytesServedName))
	res.Artifacts = len(s.digests())

	waitFor(t, opts.Timeout, "every Kustomization's status on the new revision", func() (bool, string) {
		var list deliveryv1.KustomizationList
		if err := admin.List(ctx, &list, client.InNamespace(systemNS)); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, k := range list.Items {
			if k.Status.LastAppliedRevision == rev2 && int(k.Status.Clusters.Ready) == opts.Clusters {
				n++
			}
		}
		return n == opts.Deployments, fmt.Sprintf("%d/%d Kustomizations report every cluster Ready", n, opts.Deployments)
	})
	res.Rollup = time.Since(t0)
	if m, err := scrape(ctx, hubHTTP, strings.TrimRight(cp.EtcdURL(), "/")+"/metrics", "etcd_mvcc_db_total_size_in_bytes"); err == nil {
		res.EtcdBytes = int64(sum(m["etcd_mvcc_db_total_size_in_bytes"], nil))
	} else {
		logf("etcd metrics: %v", err)
	}
	var ks deliveryv1.Kustomization
	if err := admin.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: "app-0"}, &ks); err == nil {
		b, _ := json.Marshal(ks.Status)
		res.KustomizationStatus = len(b)
	}
	var cl fleetv1.Cluster
	if err := admin.Get(ctx, client.ObjectKey{Name: "c00000"}, &cl); err == nil {
		b, _ := json.Marshal(cl.Status)
		res.ClusterStatus = len(b)
		var as fleetv1.AssignmentList
		if err := admin.List(ctx, &as, client.InNamespace(cl.Status.Namespace), client.Limit(1)); err == nil && len(as.Items) > 0 {
			a := &as.Items[0]
			a.APIVersion, a.Kind = fleetv1.GroupVersion.String(), fleetv1.AssignmentKind
			b, _ := json.Marshal(a)
			mf, _ := json.Marshal(a.ManagedFields)
			res.AssignmentBytes, res.AssignmentManagedFields = len(b), len(mf)
			if opts.ProfileDir != "" {
				pretty, _ := json.MarshalIndent(a, "", "  ")
				_ = os.WriteFile(filepath.Join(opts.ProfileDir, fmt.Sprintf("assignment-%d.json", opts.Clusters)), pretty, 0o644)
			}
		}
	}
	if hub.pprofURL != "" && opts.ProfileDir != "" {
		saveURL(ctx, hub.pprofURL+"/heap", filepath.Join(opts.ProfileDir, fmt.Sprintf("heap-%d.pprof", opts.Clusters)))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "hub.log")); err == nil && opts.ProfileDir != "" {
		// Its informers' complaints (a watch closed, a relist) explain a lagging cache.
		_ = os.WriteFile(filepath.Join(opts.ProfileDir, fmt.Sprintf("hub-%d.log", opts.Clusters)), b, 0o644)
	}
	res.Errors = errs.String()
	return res
}

// register creates the Cluster and its bootstrap token (flotilla cluster add), trades
// the token for a credential at the hub's /register (spoke/bootstrap) and builds the
// simulated cluster from the answer.
func register(ctx context.Context, admin client.Client, name, dir string, opts Options, s *sink, errs *errorLog) (*simCluster, error) {
	vals, err := registration.PrepareCluster(ctx, admin, systemNS, name, map[string]string{"bench": "fleet"}, time.Hour)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(vals.RegistrationCA)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	body, _ := json.Marshal(fregistration.Request{Cluster: name, Token: vals.Token})
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := hc.Post(vals.RegistrationURL, "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			var r fregistration.Response
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, err
			}
			return newSimCluster(&r, dir, opts.Heartbeat, s, errs)
		case resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline):
			// The hub has not made the cluster's namespace yet.
			time.Sleep(500 * time.Millisecond)
		default:
			return nil, fmt.Errorf("register %s: %s: %s", name, resp.Status, b)
		}
	}
}

// waitRevision waits until every simulated cluster runs revision on all of its
// deployments and returns the sorted times from since.
func waitRevision(t testing.TB, sims []*simCluster, revision string, since time.Time, timeout time.Duration) []time.Duration {
	t.Helper()
	var lat []time.Duration
	waitFor(t, timeout, "every cluster on "+revision, func() (bool, string) {
		lat = lat[:0]
		for _, s := range sims {
			if at, ok := s.ready(revision); ok {
				lat = append(lat, at.Sub(since))
			}
		}
		return len(lat) == len(sims), fmt.Sprintf("%d/%d clusters", len(lat), len(sims))
	})
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

func waitFor(t testing.TB, timeout time.Duration, what string, done func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := done()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (%s)", what, timeout, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// snapshot reads the API server's request counters, the hub's metrics and the hub
// process's memory and CPU.
func snapshot(t testing.TB, ctx context.Context, cp *controlplane.ControlPlane, hub *hubRun, hc *http.Client) (requests, map[string][]sample, procStat) {
	t.Helper()
	r, err := apiserverRequests(ctx, cp.Config())
	if err != nil {
		t.Fatalf("API server metrics: %v", err)
	}
	m, err := scrape(ctx, hc, hub.metricsURL, hubmetrics.BuildsName, hubmetrics.ArtifactBytesServedName, "rest_client_requests_total")
	if err != nil {
		t.Fatalf("hub metrics: %v", err)
	}
	var ps procStat
	if hub.pid != 0 {
		if ps, err = readProc(hub.pid); err != nil {
			t.Fatalf("hub process: %v", err)
		}
	}
	return r, m, ps
}

func first(m map[string][]sample, name string) float64 { return sum(m[name], nil) }

// hubRequests is the hub's own API requests per second between two scrapes of its
// client-go metrics (meaningful only when the hub runs alone in its process).
func hubRequests(a, b map[string][]sample, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return (first(b, "rest_client_requests_total") - first(a, "rest_client_requests_total")) / seconds
}

// profile saves a CPU profile of a binary hub over d, in the background.
func profile(ctx context.Context, hub *hubRun, dir, name string, d time.Duration) {
	if hub.pprofURL == "" || dir == "" {
		return
	}
	go saveURL(ctx, fmt.Sprintf("%s/profile?seconds=%d", hub.pprofURL, int(d/time.Second)), filepath.Join(dir, "cpu-"+name+".pprof"))
}

// profileAPIServer saves a CPU profile of kube-apiserver over d, in the background
// (its /debug/pprof, read with the admin credential).
func profileAPIServer(ctx context.Context, cp *controlplane.ControlPlane, dir, name string, d time.Duration) {
	if dir == "" {
		return
	}
	hc, err := rest.HTTPClientFor(cp.Config())
	if err != nil {
		return
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimRight(cp.Config().Host, "/"), int(d/time.Second))
	go saveURLWith(ctx, hc, url, filepath.Join(dir, "cpu-"+name+".pprof"))
}

func saveURL(ctx context.Context, url, path string) { saveURLWith(ctx, http.DefaultClient, url, path) }

func saveURLWith(ctx context.Context, hc *http.Client, url, path string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	_ = os.WriteFile(path, b, 0o644)
}

// portOf is the port of a URL, "" when it has none.
func portOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Port()
}

func corev1ObjectReference(a *fleetv1.Assignment) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: fleetv1.GroupVersion.String(), Kind: "Assignment",
		Namespace: a.Namespace, Name: a.Name, UID: a.UID, ResourceVersion: a.ResourceVersion}
}
