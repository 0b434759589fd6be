package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api"
	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/capi"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// TestClusterAPIAutoRegistration: a provisioned CAPI Cluster whose kubeconfig Secret
// points at a real control plane becomes a fleet Cluster with its labels, gets the
// agent installed, receives a Kustomization placed by those labels, and is
// deregistered when the CAPI Cluster is deleted.
//
// The workload control plane has no kubelet, so nothing runs the agent Deployment
// the hub installs. The test plays kubelet: once the install (bootstrap Secret and
// Deployment) appears on the workload cluster, it starts the agent in this process
// in bootstrap mode, with the workload's own client, exactly as the container's
// `flotilla-agent --bootstrap` would.
func TestClusterAPIAutoRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "capi") // its hub serves Cluster API's Cluster kind
	workload := env.StartControlPlane(t, ns+"-workload", false)

	scheme := api.NewScheme()
	if err := clusterv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	hub, err := client.New(fleet.Hub().Config(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	kubeconfig, err := workload.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wl-kubeconfig", Labels: map[string]string{clusterv1.ClusterNameLabel: "wl"}},
		Type:       clusterv1.ClusterSecretType,
		Data:       map[string][]byte{"value": kubeconfig},
	}); err != nil {
		t.Fatal(err)
	}
	cc := &clusterv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wl", Labels: map[string]string{"env": "capi", "tier": "gold"}},
		Spec:       clusterv1.ClusterSpec{Paused: ptr.To(false)},
	}
	if err := hub.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}

	// Not provisioned yet: nothing is registered. The barrier: the hub has handled
	// the CAPI Cluster, which it marks with its finalizer before it looks at whether
	// it is provisioned.
	name := capi.FleetClusterName(ns, "wl")
	env.WaitFor(t, hub, cc, func(c *clusterv1.Cluster) error {
		if !slices.Contains(c.Finalizers, capi.Finalizer) {
			return fmt.Errorf("finalizers %v, want %s", c.Finalizers, capi.Finalizer)
		}
		return nil
	})
	if err := hub.Get(ctx, client.ObjectKey{Name: name}, &fleetv1.Cluster{}); !apierrors.IsNotFound(err) {
		t.Fatalf("fleet Cluster before provisioning: %v, want NotFound", err)
	}

	// What the CAPI controllers would write once the control plane answers.
	before := cc.DeepCopy()
	cc.Status.Phase = string(clusterv1.ClusterPhaseProvisioned)
	cc.Status.Initialization.ControlPlaneInitialized = ptr.To(true)
	if err := hub.Status().Patch(ctx, cc, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}

	fc := &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
	env.WaitFor(t, hub, fc, func(c *fleetv1.Cluster) error {
		want := map[string]string{"tier": "gold", capi.NamespaceLabel: ns, capi.NameLabel: "wl"}
		for k, v := range want {
			if c.Labels[k] != v {
				return fmt.Errorf("label %s=%q, want %q (labels %v)", k, c.Labels[k], v, c.Labels)
			}
		}
		if v, ok := c.Labels["env"]; ok {
			return fmt.Errorf("label env=%q copied, though the hub allows only tier", v)
		}
		return nil
	})

	// Playing kubelet: wait for the install, then run what the Deployment runs.
	wc := workload.Client()
	env.Eventually(t, "the agent install on the workload cluster", func() error {
		if err := wc.Get(ctx, client.ObjectKey{Namespace: registration.SpokeNamespace, Name: registration.BootstrapSecretName}, &corev1.Secret{}); err != nil {
			return err
		}
		var deps metav1.PartialObjectMetadataList
		deps.SetGroupVersionKind(schemaDeploymentList)
		if err := wc.List(ctx, &deps, client.InNamespace(registration.SpokeNamespace)); err != nil {
			return err
		}
		if len(deps.Items) != 1 {
			return fmt.Errorf("%d Deployments", len(deps.Items))
		}
		return nil
	})
	runBootstrapAgent(t, workload)
	env.WaitReady(t, hub, &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}})

	git := gitserver.New(t)
	repo := git.CreateRepo("capi")
	repo.Write(map[string]string{
		"deploy/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"deploy/ns.yaml":            namespace(appNS),
		"deploy/a.yaml":             configMap(appNS, "capi", "gold"),
	})
	if err := hub.Create(ctx, &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "capi"},
		Spec:       sourcev1.GitRepositorySpec{URL: repo.URL(), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := hub.Create(ctx, &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "capi"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "capi"},
			Path:      "./deploy", Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			Placement: deliveryv1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	target{name: name, c: wc, ns: appNS}.wantValue(t, "capi", "gold")

	// Deleting the CAPI Cluster deregisters it; the finalizer lets it go afterwards.
	if err := hub.Delete(ctx, cc); err != nil {
		t.Fatal(err)
	}
	env.WaitGone(t, hub, cc)
	env.Eventually(t, "the fleet Cluster to be deregistered", func() error {
		var c fleetv1.Cluster
		err := hub.Get(ctx, client.ObjectKey{Name: name}, &c)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		case c.DeletionTimestamp != nil:
			return nil // the hub is cleaning up its namespace
		}
		return errors.New("still registered")
	})
}

var schemaDeploymentList = appsv1.SchemeGroupVersion.WithKind("DeploymentList")
