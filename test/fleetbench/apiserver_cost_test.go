//go:build fleetbench

package fleetbench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/conditions"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
)

// TestAPIServerCost is make bench-apiserver: what one request of each kind the
// fleet makes costs kube-apiserver, in its own CPU time, measured on a control plane
// of its own with nothing else talking to it. Each kind is sent costRequests times,
// costInFlight at once (the hub's Assignment writers), once without and once with
// watchers (the hub's informer and one per namespace, as agents watch). It is the
// floor under make bench-fleet: a rollout of N Assignments costs at least N hub
// writes and N agent status writes of about this much.
func TestAPIServerCost(t *testing.T) {
	cp := env.StartControlPlane(t, "hub", true)
	ctx := context.Background()
	c := cp.Client()
	pid := findProcess("kube-apiserver", "--secure-port="+portOf(cp.URL()))
	if pid == 0 {
		t.Fatal("kube-apiserver process not found")
	}
	const namespaces = 10
	for i := range namespaces {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cost-%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	var rows []string
	measure := func(what string, n int, do func(i int) error) {
		t.Helper()
		before := cpuOf(pid)
		errs := make(chan error, n)
		work := make(chan int)
		var wg sync.WaitGroup
		for range costInFlight {
			wg.Go(func() {
				for i := range work {
					if err := do(i); err != nil {
						errs <- err
					}
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("%s: %v", what, err)
		}
		per := float64((cpuOf(pid) - before).Microseconds()) / float64(n) / 1000
		rows = append(rows, fmt.Sprintf("| %s | %.2f ms |", what, per))
	}

	asg := make([]*fleetv1.Assignment, costRequests)
	measure("create an Assignment", costRequests, func(i int) error {
		a := benchAssignment(fmt.Sprintf("cost-%d", i%namespaces), fmt.Sprintf("a-%d", i), 0)
		asg[i] = a
		return c.Create(ctx, a)
	})
	specWrite := func(gen int) func(i int) error {
		return func(i int) error {
			a := asg[i]
			before := a.DeepCopy()
			setArtifact(a, gen)
			return c.Patch(ctx, a, client.MergeFrom(before))
		}
	}
	statusWrite := func(gen, entries int) func(i int) error {
		return func(i int) error {
			a := asg[i]
			before := a.DeepCopy()
			setStatus(a, gen, entries)
			return c.Status().Patch(ctx, a, client.MergeFrom(before))
		}
	}
	// The first status write of each adds the agent's managedFields entry.
	measure("agent status write, first", costRequests, statusWrite(0, 1))
	measure("hub spec write (merge patch)", costRequests, specWrite(1))
	measure("agent status write, 1 inventory entry", costRequests, statusWrite(1, 1))

	// Watchers as in a fleet: the hub's informer and an agent per namespace.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wc, err := client.NewWithWatch(cp.Config(), client.Options{Scheme: c.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	watchers := []client.ListOption{nil}
	for i := range namespaces {
		watchers = append(watchers, client.InNamespace(fmt.Sprintf("cost-%d", i)))
	}
	for _, o := range watchers {
		var opts []client.ListOption
		if o != nil {
			opts = append(opts, o)
		}
		w, err := wc.Watch(wctx, &fleetv1.AssignmentList{}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range w.ResultChan() {
			}
		}()
	}
	time.Sleep(time.Second)
	label := fmt.Sprintf(", %d watchers", len(watchers))
	measure("hub spec write"+label, costRequests, specWrite(2))
	measure("agent status write, 1 inventory entry"+label, costRequests, statusWrite(2, 1))
	measure("agent status write, no inventory entries"+label, costRequests, statusWrite(3, 0))
	measure("hub spec write, no inventory entries in status"+label, costRequests, specWrite(3))
	measure("agent status write, 40 inventory entries"+label, costRequests, statusWrite(4, 40))
	measure("hub spec write, 40 inventory entries in status"+label, costRequests, specWrite(4))

	leases := make([]*coordinationv1.Lease, costRequests)
	measure("create a Lease", costRequests, func(i int) error {
		now := metav1.NewMicroTime(time.Now())
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("cost-%d", i%namespaces), Name: fmt.Sprintf("l-%d", i),
			Labels:      map[string]string{fleetv1.ClusterLabel: "c00000"},
			Annotations: map[string]string{fleetv1.AgentVersionAnnotation: "bench", fleetv1.KubernetesVersionAnnotation: "v1.36.0-sim"}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("c00000"), LeaseDurationSeconds: ptr.To(int32(30)), RenewTime: &now, AcquireTime: &now}}
		leases[i] = l
		return c.Create(ctx, l)
	})
	measure("renew a Lease (update, protobuf)", costRequests, func(i int) error {
		now := metav1.NewMicroTime(time.Now())
		leases[i].Spec.RenewTime = &now
		return c.Update(ctx, leases[i])
	})
	measure("get an Assignment", costRequests, func(i int) error {
		var a fleetv1.Assignment
		return c.Get(ctx, client.ObjectKeyFromObject(asg[i]), &a)
	})
	perNS := costRequests / namespaces
	measure(fmt.Sprintf("list a namespace (%d Assignments)", perNS), costRequests/5, func(i int) error {
		var l fleetv1.AssignmentList
		return c.List(ctx, &l, client.InNamespace(fmt.Sprintf("cost-%d", i%namespaces)))
	})

	// The artifact server's TokenReview of an agent's service-account token.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "cost-0", Name: "agent"}}
	if err := c.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatal(err)
	}
	measure("review an agent's token (TokenReview)", costRequests, func(int) error {
		rv := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token}}
		if err := c.Create(ctx, rv); err != nil {
			return err
		}
		if !rv.Status.Authenticated {
			return fmt.Errorf("token not authenticated: %s", rv.Status.Error)
		}
		return nil
	})

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nmake bench-apiserver (kube-apiserver CPU per request, %d requests of each, %d in flight; load average %s)\n\n| request | kube-apiserver CPU |\n|---|---|\n%s\n",
		costRequests, costInFlight, strings.TrimSpace(string(load)), strings.Join(rows, "\n"))
}

const (
	costRequests = 1000
	costInFlight = 64
)

// benchAssignment is shaped as the hub writes a bench Assignment: its labels,
// finalizer, owner and signed artifact.
func benchAssignment(ns, name string, gen int) *fleetv1.Assignment {
	a := &fleetv1.Assignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels:     fleetv1.OwnerLabels("Kustomization", systemNS, "app-0"),
		Finalizers: []string{fleetv1.AssignmentFinalizer}}}
	a.Labels[fleetv1.ClusterLabel] = "c00000"
	a.Spec.Owner = fleetv1.DeploymentReference{APIVersion: "delivery.flotilla.dev/v1alpha1", Kind: "Kustomization",
		Namespace: systemNS, Name: "app-0", UID: "179ba1bf-99ee-4270-b5ce-f39eacd1edd7"}
	a.Spec.Prune = true
	a.Spec.Interval = &metav1.Duration{Duration: 10 * time.Minute}
	setArtifact(a, gen)
	return a
}

func setArtifact(a *fleetv1.Assignment, gen int) {
	hex := fmt.Sprintf("%064x", gen)
	a.Spec.Artifact = fleetv1.SignedArtifact{
		URL:       "https://127.0.0.1:33159/artifacts/sha256/" + hex + ".tar.gz",
		Digest:    "sha256:" + hex,
		Signature: strings.Repeat("A", 86) + "==",
		Revision:  fmt.Sprintf("main@sha1:%040x", gen),
	}
}

// setStatus writes what the agent reports for revision gen with entries objects.
func setStatus(a *fleetv1.Assignment, gen, entries int) {
	msg := fmt.Sprintf("applied revision %s: %d objects (%d configured)", a.Spec.Artifact.Revision, entries, entries)
	a.Status.ObservedGeneration = a.Generation
	a.Status.AppliedDigest, a.Status.AppliedRevision = a.Spec.Artifact.Digest, a.Spec.Artifact.Revision
	a.Status.Inventory = int32(entries)
	a.Status.Entries = nil
	for j := range entries {
		a.Status.Entries = append(a.Status.Entries, fleetv1.InventoryEntry{ID: fmt.Sprintf("default_app-%d-%d__ConfigMap", gen, j), Version: "v1"})
	}
	a.Status.Message = msg
	conditions.MarkReady(a, meta.SucceededReason, msg)
}
