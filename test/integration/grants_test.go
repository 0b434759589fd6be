package integration

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flotilla-dev/flotilla/api"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	hubmetrics "github.com/flotilla-dev/flotilla/hub/metrics"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// TestArtifactGrants: each cluster's Assignment carries a download grant in its
// artifact URL, and the hub's artifact server serves a new Assignment's artifact the
// moment the agent can see it, with no 403 and no Assignment lookup, while the real
// agents roll several revisions out.
//
// Not parallel: it reads the hub's Prometheus counters, which every hub in this test
// process shares, so nothing else may download while it counts.
func TestArtifactGrants(t *testing.T) {
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "grants")
	hub := fleet.HubClient()
	ca := fleet.HubInstance().ArtifactCA()
	cred := credential(t, fleet, "spoke-1")

	repo := gitserver.New(t).CreateRepo("grants")
	rev := repo.Write(map[string]string{
		"app/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"app/ns.yaml":            namespace(appNS),
		"app/a.yaml":             configMap(appNS, "a", "0"),
	})
	src := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec:       sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}},
	}
	ks := &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path:      "app", Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			Placement: byName("spoke-1", "spoke-2"),
		},
	}
	for _, o := range []client.Object{src, ks} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, rev)

	// Each cluster's URL is the store's URL with a grant of its own.
	urls := map[string]string{}
	for _, cl := range []string{"spoke-1", "spoke-2"} {
		a := assignmentOf(cl, ns, "app")
		if err := hub.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			t.Fatal(err)
		}
		base, grant, ok := strings.Cut(a.Spec.Artifact.URL, "?"+storage.GrantParam+"=")
		if !ok || grant == "" || !strings.HasSuffix(base, strings.TrimPrefix(a.Spec.Artifact.Digest, "sha256:")+".tar.gz") {
			t.Fatalf("%s: artifact URL %s is not the artifact's URL with a grant", cl, a.Spec.Artifact.URL)
		}
		urls[cl] = a.Spec.Artifact.URL
	}
	if urls["spoke-1"] == urls["spoke-2"] {
		t.Fatalf("both clusters got the same grant: %s", urls["spoke-1"])
	}

	// As the agent does: watch the cluster's own Assignments with its own credential,
	// and download each new artifact the moment it shows, before the hub's cache may
	// have it. The URL without its grant is asked at the same moment, for comparison.
	watcher, err := client.NewWithWatch(cred.RESTConfig(), client.Options{Scheme: api.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	before := guardCounts(t)
	const revisions = 4
	var granted, looked []time.Duration
	prev := ""
	for i := 1; i <= revisions; i++ {
		w, err := watcher.Watch(ctx, &fleetv1.AssignmentList{}, client.InNamespace(fleetv1.ClusterNamespace("spoke-1")))
		if err != nil {
			t.Fatal(err)
		}
		if prev == "" {
			prev = digestOf(t, hub, assignmentOf("spoke-1", ns, "app"))
		}
		rev = repo.Write(map[string]string{"app/a.yaml": configMap(appNS, "a", fmt.Sprint(i))})
		fetchNow(t, hub, src, rev)
		a := nextAssignment(t, w, assignmentOf("spoke-1", ns, "app").Name, prev)
		w.Stop()
		prev = a.Spec.Artifact.Digest
		ungranted, _, _ := strings.Cut(a.Spec.Artifact.URL, "?")
		type answer struct {
			code int
			took time.Duration
		}
		plain := make(chan answer, 1)
		go func() {
			began := time.Now()
			code := getArtifact(t, ca, ungranted, cred.Token)
			plain <- answer{code, time.Since(began)}
		}()
		began := time.Now()
		if code := getArtifact(t, ca, a.Spec.Artifact.URL, cred.Token); code != http.StatusOK {
			t.Fatalf("revision %d: the granted download of a new Assignment's artifact got %d, want 200 at once", i, code)
		}
		granted = append(granted, time.Since(began))
		p := <-plain
		if p.code != http.StatusOK {
			t.Errorf("revision %d: the same download without its grant got %d, want 200", i, p.code)
		}
		looked = append(looked, p.took)
	}
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, rev)
	after := guardCounts(t)

	delta := map[string]float64{}
	for k, v := range after {
		delta[k] = v - before[k]
	}
	t.Logf("%d revisions: granted downloads took %s, the same without a grant %s; guard decisions %v, artifact responses by code %v",
		revisions, durations(granted), durations(looked), delta, codes(after, before))
	if delta["refused"] != 0 || delta["code/403"] != 0 {
		t.Errorf("the hub refused %v downloads (403: %v) during the rollout", delta["refused"], delta["code/403"])
	}
	// Ours (one per revision) and the two agents' (one per revision each) are granted;
	// only the ungranted comparison requests are looked up.
	if delta["granted"] < 3*revisions {
		t.Errorf("%v downloads were granted, want at least %d (ours and both agents')", delta["granted"], 3*revisions)
	}
	if delta["assigned"] > revisions {
		t.Errorf("%v downloads were looked up, want at most our %d ungranted ones", delta["assigned"], revisions)
	}
}

// nextAssignment waits on w for the Assignment name to point at a digest other than prev.
func nextAssignment(t *testing.T, w watch.Interface, name, prev string) *fleetv1.Assignment {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch of Assignment %s ended", name)
			}
			if a, isA := ev.Object.(*fleetv1.Assignment); isA && a.Name == name && a.Spec.Artifact.Digest != prev &&
				(ev.Type == watch.Added || ev.Type == watch.Modified) {
				return a
			}
		case <-timeout:
			t.Fatalf("Assignment %s did not move on from %s", name, prev)
		}
	}
}

func digestOf(t *testing.T, c client.Client, a *fleetv1.Assignment) string {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(a), a); err != nil {
		t.Fatal(err)
	}
	return a.Spec.Artifact.Digest
}

// guardCounts reads the artifact guard's decisions by result, and the artifact
// server's responses by code as "code/<code>", from the process's metrics registry.
func guardCounts(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch {
				case f.GetName() == hubmetrics.ArtifactAuthorizedName && l.GetName() == "result":
					out[l.GetValue()] += m.GetCounter().GetValue()
				case f.GetName() == hubmetrics.ArtifactRequestsName && l.GetName() == "code":
					out["code/"+l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func codes(after, before map[string]float64) string {
	var out []string
	for k, v := range after {
		if c, ok := strings.CutPrefix(k, "code/"); ok && v != before[k] {
			out = append(out, fmt.Sprintf("%s: %v", c, v-before[k]))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func durations(ds []time.Duration) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Round(time.Millisecond).String())
	}
	return "[" + strings.Join(out, " ") + "]"
}
