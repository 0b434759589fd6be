package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/fleet/devenv/controlplane"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Names of the fake node StartNodes registers.
const (
	// FakeNodeName is the node kwok runs pods on.
	FakeNodeName = "kwok-node-1"
	// KwokNodeAnnotation marks the nodes kwok manages (and only those).
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
)

// StartNodes makes a control plane run workloads without containers, until the test
// ends: it starts kube-controller-manager (Deployments, ReplicaSets, Jobs…), kwok
// (which plays the kubelet of one fake node), and a minimal scheduler that binds pods
// to that node when their nodeSelector allows it. The binaries come from the control
// plane's own folder. As on a plain API server, no namespace controller runs: a
// deleted Namespace stays Terminating, with what is left in it, so that tests sharing
// the control plane see what an agent deleted and what it left alone.
func StartNodes(t testing.TB, cp *controlplane.ControlPlane) {
	t.Helper()
	stop, err := startNodes(context.Background(), cp, t.TempDir())
	if err != nil {
		t.Fatalf("nodes for %s: %v", cp.Name(), err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop the nodes of %s: %v", cp.Name(), err)
		}
	})
}

// startNodes starts the processes; dir receives the kubeconfig and their logs. stop
// ends them all.
func startNodes(ctx context.Context, cp *controlplane.ControlPlane, dir string) (stop func() error, err error) {
	bin := cp.BinaryDir()
	for _, b := range []string{"kube-controller-manager", "kwok"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%s is missing in %s (run `make control-plane`): %w", b, bin, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, cp.Name()+".kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfig); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	var procs []*exec.Cmd
	var wg sync.WaitGroup
	stop = func() error {
		cancel()
		var errs []error
		for _, p := range procs {
			if p.Process != nil {
				// SIGTERM first, so that they shut down their watches cleanly.
				if err := p.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
					errs = append(errs, err)
				}
			}
		}
		wg.Wait()
		return errors.Join(errs...)
	}

	start := func(name string, args ...string) error {
		logFile, err := os.Create(filepath.Join(dir, cp.Name()+"-"+name+".log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		// kwok also reads ~/.kwok/kwok.yaml; a home of our own keeps the user's out.
		cmd.Env = append(os.Environ(), "HOME="+dir)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			logFile.Close()
			return fmt.Errorf("start %s: %w", name, err)
		}
		procs = append(procs, cmd)
		wg.Go(func() {
			_ = cmd.Wait()
			logFile.Close()
		})
		return nil
	}

	stages := filepath.Join(dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, []byte(kwokStages), 0o644); err != nil {
		return nil, err
	}
	err = start("kube-controller-manager",
		"--kubeconfig="+kubeconfig,
		"--leader-elect=false",
		// No HTTPS endpoint: several spokes run side by side and would fight for the port.
		"--secure-port=0",
		// Without a signing key the legacy token controller is off; pods get projected
		// tokens from the API server instead.
		"--controllers=*,-namespace,-nodeipam,-nodelifecycle,-serviceaccount-token,-persistentvolume-binder,-attachdetach,-ttl,-bootstrapsigner,-tokencleaner",
		"--use-service-account-credentials=false",
	)
	if err == nil {
		err = start("kwok",
			"--kubeconfig="+kubeconfig,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector="+KwokNodeAnnotation+"=fake",
			"--cidr=10.0.0.0/24",
			"--config="+stages,
		)
	}
	if err == nil {
		err = createFakeNode(ctx, cp.Client())
	}
	if err != nil {
		_ = stop()
		return nil, err
	}
	wg.Go(func() { schedule(ctx, cp.Client()) })
	return stop, nil
}

func createFakeNode(ctx context.Context, c client.Client) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        FakeNodeName,
			Annotations: map[string]string{KwokNodeAnnotation: "fake"},
			Labels: map[string]string{
				"kubernetes.io/hostname": FakeNodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"type": "kwok",
			},
		},
		Spec: corev1.NodeSpec{
			// kwok's nodes are usually tainted so real pods stay off them; here every
			// pod is meant for them, so there is no taint.
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("110"),
			},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("110"),
			},
		},
	}
	if err := c.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create fake node: %w", err)
	}
	return nil
}

// schedule is the smallest scheduler that lets Deployments come up: every second it
// binds each pending pod to the first node whose labels satisfy the pod's
// nodeSelector. A pod no node satisfies stays Pending, as with the real scheduler.
func schedule(ctx context.Context, c client.Client) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nodes := &corev1.NodeList{}
		pods := &corev1.PodList{}
		if c.List(ctx, nodes) != nil || c.List(ctx, pods) != nil {
			continue
		}
		for i := range pods.Items {
			pod := &pods.Items[i]
			if pod.Spec.NodeName != "" || !pod.DeletionTimestamp.IsZero() {
				continue
			}
			for _, n := range nodes.Items {
				if !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(n.Labels)) {
					continue
				}
				binding := &corev1.Binding{
					ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
					Target:     corev1.ObjectReference{Kind: "Node", Name: n.Name},
				}
				_ = c.SubResource("binding").Create(ctx, pod, binding)
				break
			}
		}
	}
}

// kwokStages are the lifecycle kwok plays: the node turns Ready, a pod bound to it
// runs and turns Ready at once, and a deleted pod goes. A pod labelled
// test.flotilla.dev/phase (charts.PhaseLabel, Helm test hooks) ends at once in the
// phase it names, Succeeded or Failed, as a finished test container would. (kwok's
// binary ships no stages of its own.)
const kwokStages = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-ready
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
        message: kwok plays the kubelet
        reason: KubeletReady
        status: "True"
        type: Ready
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.status.phase'
      operator: In
      values: [Pending]
    - key: '.metadata.labels."test.flotilla.dev/phase"'
      operator: DoesNotExist
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: Exists
  next:
    delete: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-succeeded
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.metadata.labels."test.flotilla.dev/phase"'
      operator: In
      values: [Succeeded]
    - key: '.status.phase'
      operator: NotIn
      values: [Succeeded]
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: PodCompleted
        type: Ready
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-failed
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.metadata.labels."test.flotilla.dev/phase"'
      operator: In
      values: [Failed]
    - key: '.status.phase'
      operator: NotIn
      values: [Failed]
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: PodCompleted
        type: Ready
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        state:
          terminated:
            exitCode: 1
            reason: Error
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
      {{ end }}
      phase: Failed
      startTime: {{ $now | Quote }}
`
