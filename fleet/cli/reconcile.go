package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
)

// reconcilable is a kind that reconcile, suspend and resume act on.
type reconcilable struct {
	use     string // the words after the verb, e.g. "source git"
	aliases []string
	noun    string // for messages
	newObj  func() conditioned
	// lastHandled is status.lastHandledReconcileAt; revision is what the object last
	// produced, for the closing message.
	lastHandled func(client.Object) string
	revision    func(client.Object) string
	// source names the source a deployment is built from, for --with-source.
	source func(client.Object) (*reconcilable, client.ObjectKey)
}

var gitRepositoryKind = &reconcilable{
	use: "git", aliases: []string{"gitrepository", "gitrepo"}, noun: "GitRepository",
	newObj:      func() conditioned { return &sourcev1.GitRepository{} },
	lastHandled: func(o client.Object) string { return o.(*sourcev1.GitRepository).Status.LastHandledReconcileAt },
	revision: func(o client.Object) string {
		if a := o.(*sourcev1.GitRepository).Status.Artifact; a != nil {
			return a.Revision
		}
		return ""
	},
}

var helmRepositoryKind = &reconcilable{
	use: "helm", aliases: []string{"helmrepository", "helmrepo"}, noun: "HelmRepository",
	newObj:      func() conditioned { return &sourcev1.HelmRepository{} },
	lastHandled: func(o client.Object) string { return o.(*sourcev1.HelmRepository).Status.LastHandledReconcileAt },
	revision: func(o client.Object) string {
		if a := o.(*sourcev1.HelmRepository).Status.Artifact; a != nil {
			return a.Revision
		}
		return ""
	},
}

var ociRepositoryKind = &reconcilable{
	use: "oci", aliases: []string{"ocirepository", "ocirepo"}, noun: "OCIRepository",
	newObj:      func() conditioned { return &sourcev1.OCIRepository{} },
	lastHandled: func(o client.Object) string { return o.(*sourcev1.OCIRepository).Status.LastHandledReconcileAt },
	revision: func(o client.Object) string {
		if a := o.(*sourcev1.OCIRepository).Status.Artifact; a != nil {
			return a.Revision
		}
		return ""
	},
}

// sourceKinds are the source kinds by their Kubernetes kind, for --with-source.
var sourceKinds = map[string]*reconcilable{
	sourcev1.GitRepositoryKind:  gitRepositoryKind,
	sourcev1.HelmRepositoryKind: helmRepositoryKind,
	sourcev1.OCIRepositoryKind:  ociRepositoryKind,
}

// sourceOf is the reconcilable source a deployment names, or nil for a kind the CLI
// does not know.
func sourceOf(kind, namespace, name, ownNamespace string) (*reconcilable, client.ObjectKey) {
	sk := sourceKinds[kind]
	if sk == nil {
		return nil, client.ObjectKey{}
	}
	if namespace == "" {
		namespace = ownNamespace
	}
	return sk, client.ObjectKey{Namespace: namespace, Name: name}
}

var kustomizationKind = &reconcilable{
	use: "kustomization", aliases: []string{"ks", "kustomizations"}, noun: "Kustomization",
	newObj:      func() conditioned { return &deliveryv1.Kustomization{} },
	lastHandled: func(o client.Object) string { return o.(*deliveryv1.Kustomization).Status.LastHandledReconcileAt },
	revision:    func(o client.Object) string { return o.(*deliveryv1.Kustomization).Status.LastAppliedRevision },
	source: func(o client.Object) (*reconcilable, client.ObjectKey) {
		k := o.(*deliveryv1.Kustomization)
		return sourceOf(k.Spec.SourceRef.Kind, k.Spec.SourceRef.Namespace, k.Spec.SourceRef.Name, k.Namespace)
	},
}

var helmReleaseKind = &reconcilable{
	use: "helmrelease", aliases: []string{"hr", "helmreleases"}, noun: "HelmRelease",
	newObj:      func() conditioned { return &deliveryv1.HelmRelease{} },
	lastHandled: func(o client.Object) string { return o.(*deliveryv1.HelmRelease).Status.LastHandledReconcileAt },
	revision:    func(o client.Object) string { return o.(*deliveryv1.HelmRelease).Status.LastAppliedRevision },
	source: func(o client.Object) (*reconcilable, client.ObjectKey) {
		h := o.(*deliveryv1.HelmRelease)
		ref := h.Spec.Chart.SourceRef
		return sourceOf(ref.Kind, ref.Namespace, ref.Name, h.Namespace)
	},
}

// The notification kinds: suspend and resume all three; reconcile a Receiver (its
// Secret and resources checked again). Providers and Alerts have no reconcile
// request to wait on, so resuming them does not wait.
var (
	providerKind = &reconcilable{
		use: "provider", aliases: []string{"providers"}, noun: "Provider",
		newObj: func() conditioned { return &notificationv1.Provider{} },
	}
	alertKind = &reconcilable{
		use: "alert", aliases: []string{"alerts"}, noun: "Alert",
		newObj: func() conditioned { return &notificationv1.Alert{} },
	}
	receiverKind = &reconcilable{
		use: "receiver", aliases: []string{"receivers", "rcv"}, noun: "Receiver",
		newObj:      func() conditioned { return &notificationv1.Receiver{} },
		lastHandled: func(o client.Object) string { return o.(*notificationv1.Receiver).Status.LastHandledReconcileAt },
		revision:    func(o client.Object) string { return o.(*notificationv1.Receiver).Status.WebhookPath },
	}
)

// verb builds `flotilla VERB source git|helm|oci NAME` and `flotilla VERB
// kustomization|helmrelease NAME`.
func verb(use, short string, run func(cmd *cobra.Command, k *reconcilable, key client.ObjectKey) error, g *globals, flags func(*cobra.Command), extra ...*reconcilable) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short}
	leaf := func(k *reconcilable) *cobra.Command {
		c := &cobra.Command{
			Use:               k.use + " NAME",
			Aliases:           k.aliases,
			Short:             short + ": " + k.noun,
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: completeNamesOf(g, strings.ToLower(k.noun)),
			RunE: func(cmd *cobra.Command, args []string) error {
				ns, err := g.ns()
				if err != nil {
					return err
				}
				return run(cmd, k, client.ObjectKey{Namespace: ns, Name: args[0]})
			},
		}
		if flags != nil {
			flags(c)
		}
		return c
	}
	source := &cobra.Command{Use: "source", Short: short + ": a source"}
	source.AddCommand(leaf(gitRepositoryKind), leaf(helmRepositoryKind), leaf(ociRepositoryKind))
	cmd.AddCommand(source, leaf(kustomizationKind), leaf(helmReleaseKind))
	for _, k := range extra {
		cmd.AddCommand(leaf(k))
	}
	return cmd
}

func newReconcileCommand(g *globals) *cobra.Command {
	var (
		wait       bool
		timeout    time.Duration
		withSource bool
	)
	run := func(cmd *cobra.Command, k *reconcilable, key client.ObjectKey) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if withSource && k.source != nil {
			obj := k.newObj()
			if err := c.Get(ctx, key, obj); err != nil {
				return notFound(k, key, err)
			}
			if sk, skey := k.source(obj); sk != nil {
				if err := reconcile(ctx, g, c, sk, skey, wait, timeout); err != nil {
					return err
				}
			}
		}
		return reconcile(ctx, g, c, k, key, wait, timeout)
	}
	cmd := verb("reconcile", "Ask for an immediate reconcile", run, g, func(c *cobra.Command) {
		c.Flags().BoolVar(&wait, "wait", true, "wait until the controller has handled the request")
		c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait")
		if c.Name() == "kustomization" || c.Name() == "helmrelease" {
			c.Flags().BoolVar(&withSource, "with-source", false, "reconcile the source first")
		}
	}, receiverKind)
	cmd.AddCommand(reconcileAssignmentCommand(g))
	cmd.Example = `  flotilla reconcile source git podinfo
  flotilla reconcile kustomization podinfo --with-source
  flotilla reconcile helmrelease podinfo --with-source   # the chart's source first`
	return cmd
}

func newSuspendCommand(g *globals) *cobra.Command {
	run := func(cmd *cobra.Command, k *reconcilable, key client.ObjectKey) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		fmt.Fprintf(g.errOut, "► suspending %s %s\n", k.noun, key)
		if err := patchSuspend(cmd.Context(), c, k, key, true, ""); err != nil {
			return err
		}
		fmt.Fprintf(g.errOut, "✔ %s %s suspended\n", k.noun, key)
		return nil
	}
	cmd := verb("suspend", "Stop reconciling an object (spec.suspend: true; for a Cluster spec.paused)", run, g, nil,
		providerKind, alertKind, receiverKind)
	cmd.AddCommand(clusterPauseCommand(g, true))
	return cmd
}

func newResumeCommand(g *globals) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	run := func(cmd *cobra.Command, k *reconcilable, key client.ObjectKey) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		fmt.Fprintf(g.errOut, "► resuming %s %s\n", k.noun, key)
		// Resuming also asks for a reconcile, so that the object catches up at once.
		at := now()
		if err := patchSuspend(cmd.Context(), c, k, key, false, at); err != nil {
			return err
		}
		if !wait || k.lastHandled == nil {
			fmt.Fprintf(g.errOut, "✔ %s %s resumed\n", k.noun, key)
			return nil
		}
		return waitHandled(cmd.Context(), g, c, k, key, at, timeout)
	}
	cmd := verb("resume", "Reconcile a suspended object again (spec.suspend: false; for a Cluster spec.paused)", run, g, func(c *cobra.Command) {
		c.Flags().BoolVar(&wait, "wait", true, "wait until the controller has reconciled it")
		c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait")
	}, providerKind, alertKind, receiverKind)
	cmd.AddCommand(clusterPauseCommand(g, false))
	return cmd
}

func now() string { return time.Now().Format(time.RFC3339Nano) }

// reconcile sets the reconcile-requested-at annotation and, with wait, waits for
// the controller to handle it.
func reconcile(ctx context.Context, g *globals, c client.Client, k *reconcilable, key client.ObjectKey, wait bool, timeout time.Duration) error {
	obj := k.newObj()
	if err := c.Get(ctx, key, obj); err != nil {
		return notFound(k, key, err)
	}
	if suspended(obj) {
		return fmt.Errorf("%s %s is suspended: resume it with `flotilla resume`", k.noun, key)
	}
	fmt.Fprintf(g.errOut, "► annotating %s %s\n", k.noun, key)
	at := now()
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{meta.ReconcileRequestedAtAnnotation: at}},
	})
	if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return err
	}
	if !wait {
		fmt.Fprintf(g.errOut, "✔ reconcile requested\n")
		return nil
	}
	return waitHandled(ctx, g, c, k, key, at, timeout)
}

func patchSuspend(ctx context.Context, c client.Client, k *reconcilable, key client.ObjectKey, suspend bool, requestAt string) error {
	obj := k.newObj()
	if err := c.Get(ctx, key, obj); err != nil {
		return notFound(k, key, err)
	}
	p := map[string]any{"spec": map[string]any{"suspend": suspend}}
	if requestAt != "" {
		p["metadata"] = map[string]any{"annotations": map[string]string{meta.ReconcileRequestedAtAnnotation: requestAt}}
	}
	patch, _ := json.Marshal(p)
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

// waitHandled waits until the controller has handled the request made at `at` and
// the Ready condition is settled (True or False, not Unknown while in progress).
func waitHandled(ctx context.Context, g *globals, c client.Client, k *reconcilable, key client.ObjectKey, at string, timeout time.Duration) error {
	fmt.Fprintf(g.errOut, "◎ waiting for %s %s to be reconciled\n", k.noun, key)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	obj := k.newObj()
	var (
		got     bool  // obj holds a successful read
		lastErr error // the last read error, other than the deadline's
	)
	for {
		err := c.Get(ctx, key, obj)
		switch {
		case err == nil:
			got, lastErr = true, nil
		case ctx.Err() == nil:
			lastErr = err
		}
		if err == nil && k.lastHandled(obj) == at {
			ready := apimeta.FindStatusCondition(obj.GetConditions(), meta.ReadyCondition)
			switch {
			case ready != nil && ready.Status == metav1.ConditionTrue:
				msg := "reconciled"
				if rev := k.revision(obj); rev != "" {
					msg += ", revision " + rev
				}
				fmt.Fprintf(g.errOut, "✔ %s %s %s\n", k.noun, key, msg)
				return nil
			case ready != nil && ready.Status == metav1.ConditionFalse:
				return fmt.Errorf("%s %s is not ready: %s", k.noun, key, ready.Message)
			}
		}
		select {
		case <-ctx.Done():
			state := "the controller has not handled the request"
			switch {
			case lastErr != nil:
				state = lastErr.Error()
			case got && k.lastHandled(obj) == at:
				state = "it is still reconciling"
				if r := apimeta.FindStatusCondition(obj.GetConditions(), meta.ReadyCondition); r != nil {
					state += ": " + r.Message
				}
			}
			return fmt.Errorf("timed out after %s waiting for %s %s: %s", timeout, k.noun, key, state)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func notFound(k *reconcilable, key client.ObjectKey, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s not found", k.noun, key)
	}
	if apimeta.IsNoMatchError(err) {
		return fmt.Errorf("the hub does not serve %s: are the Flotilla CRDs installed? (%w)", k.noun, err)
	}
	return err
}
