package integration

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/devenv"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/hub/storage"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
	"github.com/flotilla-dev/flotilla/test/gitserver"
	"github.com/flotilla-dev/flotilla/test/registry"
)

// roundRobin is the Service in front of the hub's replicas: it passes each TCP
// connection (TLS and all) to the next replica that accepts one.
type roundRobin struct {
	lis      net.Listener
	backends []string
	next     atomic.Uint64
	served   []atomic.Int64 // connections per backend
}

func newRoundRobin(t *testing.T, backends ...string) *roundRobin {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &roundRobin{lis: lis, backends: backends, served: make([]atomic.Int64, len(backends))}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go p.pass(c)
		}
	}()
	return p
}

func (p *roundRobin) pass(c net.Conn) {
	defer c.Close()
	start := p.next.Add(1)
	for i := range p.backends {
		n := int(start+uint64(i)) % len(p.backends)
		b, err := net.DialTimeout("tcp", p.backends[n], time.Second)
		if err != nil {
			continue // a stopped replica: the next one
		}
		p.served[n].Add(1)
		defer b.Close()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
		go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
		<-done
		return
	}
}

// freeAddr is a 127.0.0.1 address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// TestHubReplicas runs two hub replicas on one API server with leader election and
// their artifacts in a registry, behind one artifact address. The leader is stopped
// (its Lease kept, as when its process dies) in the middle of a rollout; the other
// replica takes over, reads what the first stored from the registry, serves the
// agents' downloads and completes the rollout.
func TestHubReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := registry.New(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	proxy := newRoundRobin(t, addrA, addrB)
	base := "https://" + proxy.lis.Addr().String()

	var replica manager.Options
	fleet := fleetenv.StartFleet(t, 2, fleetenv.With(func(o *devenv.Options) {
		o.Hub = func(h *manager.Options) {
			h.ArtifactAddr, h.ArtifactBaseURL = addrA, base
			h.ArtifactStore = reg.URL("flotilla/artifacts")
			h.LeaderElection, h.LeaderElectionLease = true, 3*time.Second
			h.StorageDir = "" // nothing on disk: a replica elsewhere could not read it
			replica = *h
		}
	}))
	hubA := fleet.HubInstance()
	select {
	case <-hubA.Elected():
	case <-time.After(30 * time.Second):
		t.Fatal("the first replica did not become leader")
	}

	replica.ArtifactAddr = addrB
	ctxB, stopB := context.WithCancel(logr.NewContext(ctx, env.Log().WithName("replica-b")))
	hubB, err := manager.Start(ctxB, replica)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopB(); <-hubB.Done() })
	select {
	case <-hubB.Elected():
		t.Fatal("the second replica leads while the first runs")
	case <-time.After(time.Second):
	}

	hub := fleet.HubClient()
	ns, appNS := newTest(t, hub, "replicas")
	spokes := map[string]target{}
	for _, s := range []string{"spoke-1", "spoke-2"} {
		spokes[s] = spokeTarget(fleet, s, appNS)
	}
	repo := gitserver.New(t).CreateRepo("replicas")
	rev1 := repo.Write(map[string]string{
		"app/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"app/ns.yaml":            namespace(appNS),
		"app/a.yaml":             configMap(appNS, "a", "one"),
	})
	src := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec:       sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}},
	}
	one := intstr.FromInt32(1)
	ks := &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path:      "app", Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			Placement: byName("spoke-1", "spoke-2"),
			Rollout:   &deliveryv1.Rollout{MaxUnavailable: &one},
		},
	}
	for _, o := range []client.Object{src, ks} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, rev1)
	first := artifactDigest(t, hub, ks, rev1)

	// The artifact lives in the registry, under its own digest.
	s, err := storage.NewOCI(reg.URL("flotilla/artifacts"), base, storage.OCIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has(first) {
		t.Fatalf("%s is not in the registry", first)
	}

	t.Run("a replica that does not lead serves artifacts, authorised per cluster", func(t *testing.T) {
		ca, path := hubB.ArtifactCA(), strings.TrimPrefix(s.URL(first), base)
		token := credential(t, fleet, "spoke-1").Token
		if code := getArtifact(t, ca, "https://"+addrB+path, token); code != 200 {
			t.Fatalf("replica B answered %d to spoke-1's download of its artifact", code)
		}
		if code := getArtifact(t, ca, "https://"+addrB+path, ""); code != 401 {
			t.Fatalf("replica B answered %d to a download without a credential", code)
		}
		// The Assignment's own URL carries spoke-1's grant, which replica B checks
		// with its keyring alone.
		a := assignmentOf("spoke-1", ns, "app")
		if err := hub.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(a.Spec.Artifact.URL, "?grant=") {
			t.Fatalf("the Assignment's artifact URL %s carries no grant", a.Spec.Artifact.URL)
		}
		if code := getArtifact(t, ca, "https://"+addrB+strings.TrimPrefix(a.Spec.Artifact.URL, base), token); code != 200 {
			t.Fatalf("replica B answered %d to spoke-1's granted download", code)
		}
		other := "sha256:" + strings.Repeat("e", 64)
		if code := getArtifact(t, ca, "https://"+addrB+strings.TrimPrefix(s.URL(other), base), token); code != 403 {
			t.Fatalf("replica B answered %d to a download of an artifact not assigned to spoke-1", code)
		}
	})

	t.Run("the leader stops mid-rollout and the other replica completes it", func(t *testing.T) {
		// spoke-1, first in the rollout, stays unavailable until the leader is gone.
		fleet.StopAgent("spoke-1")
		rev2 := repo.Write(map[string]string{"app/a.yaml": configMap(appNS, "a", "two")})
		fetchNow(t, hub, src, rev2)
		next := artifactDigest(t, hub, ks, rev2)
		wantOnDigest(t, hub, ks, next, "spoke-1")
		if d := digests(t, hub, ks); d["spoke-2"] != first {
			t.Fatalf("spoke-2 moved on while spoke-1 is unavailable: %v", d)
		}
		servedByB := proxy.served[1].Load()

		stopped := time.Now()
		if err := fleet.StopHub(); err != nil {
			t.Fatalf("stop the leader: %v", err)
		}
		fleet.StartAgent("spoke-1")
		select {
		case <-hubB.Elected():
			t.Logf("replica B leads %s after the leader stopped", time.Since(stopped).Round(time.Millisecond))
		case <-time.After(time.Minute):
			t.Fatal("replica B did not take over")
		}
		for _, tg := range spokes {
			tg.wantValue(t, "a", "two")
		}
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 2, Applied: 2, Ready: 2}, rev2)
		wantOnDigest(t, hub, ks, next, "spoke-1", "spoke-2")
		if got := proxy.served[1].Load(); got <= servedByB {
			t.Fatalf("replica B served no download after the leader stopped (%d connections before, %d after)", servedByB, got)
		}
		t.Logf("rollout completed %s after the leader stopped", time.Since(stopped).Round(time.Millisecond))
	})
}
