package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/flotilla-dev/flotilla/api"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/deploy"
	"github.com/flotilla-dev/flotilla/hub/manager"
	"github.com/flotilla-dev/flotilla/hub/registration"
)

// Outcome of one check.
type Outcome int

const (
	Passed Outcome = iota
	Warning
	Failed
)

func (o Outcome) mark() string {
	return [...]string{"✔", "⚠", "✗"}[o]
}

// CheckResult is one line of `flotilla check`.
type CheckResult struct {
	Outcome Outcome
	What    string
	Detail  string
}

// Checker checks an install on the hub.
type Checker struct {
	Client          client.Client
	SystemNamespace string
	// CLIServer is the API server address this CLI uses, compared with the one
	// agents are given.
	CLIServer string
	// HTTPTimeout bounds the artifact server check; 5s when zero.
	HTTPTimeout time.Duration
}

// Run runs every check, in the order an install depends on them.
func (c *Checker) Run(ctx context.Context) []CheckResult {
	if c.SystemNamespace == "" {
		c.SystemNamespace = manager.DefaultSystemNamespace
	}
	var res []CheckResult
	res = append(res, c.crds(ctx)...)
	hubVersion, r := c.deployment(ctx)
	res = append(res, r...)
	res = append(res, c.rbac(ctx)...)
	res = append(res, c.hubInfo(ctx)...)
	res = append(res, c.agents(ctx, hubVersion)...)
	return res
}

// crds compares every CRD on the hub with this CLI's.
func (c *Checker) crds(ctx context.Context) []CheckResult {
	objs, err := BuildKustomization("crds")
	if err != nil {
		return []CheckResult{{Failed, "CRDs", err.Error()}}
	}
	var missing, differ, notReady []string
	for _, o := range objs {
		var want apiextensionsv1.CustomResourceDefinition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &want); err != nil {
			return []CheckResult{{Failed, "CRDs", err.Error()}}
		}
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Client.Get(ctx, client.ObjectKey{Name: want.Name}, &got); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, want.Name)
				continue
			}
			return []CheckResult{{Failed, "CRDs", err.Error()}}
		}
		if !sameVersions(want.Spec.Versions, got.Spec.Versions) {
			differ = append(differ, want.Name)
		}
		if !crdEstablished(&got) {
			notReady = append(notReady, want.Name)
		}
	}
	var res []CheckResult
	if len(missing) > 0 {
		res = append(res, CheckResult{Failed, "CRDs", "missing: " + strings.Join(missing, ", ") + " (flotilla install)"})
	}
	if len(differ) > 0 {
		res = append(res, CheckResult{Failed, "CRDs", "not at this CLI's version (" + version.Version + "): " + strings.Join(differ, ", ") + " (flotilla install upgrades them)"})
	}
	if len(notReady) > 0 {
		res = append(res, CheckResult{Failed, "CRDs", "not established: " + strings.Join(notReady, ", ")})
	}
	if len(res) == 0 {
		res = append(res, CheckResult{Passed, "CRDs", fmt.Sprintf("%d installed, at this CLI's version (%s)", len(objs), version.Version)})
	}
	return res
}

// sameVersions compares what a CRD serves; the API server adds nothing to the
// versions the CLI applies, so any difference was made by another version.
func sameVersions(want, got []apiextensionsv1.CustomResourceDefinitionVersion) bool {
	return equality.Semantic.DeepEqual(want, got)
}

func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// deployment checks the hub's Deployment and returns the hub's version (its image tag).
func (c *Checker) deployment(ctx context.Context) (string, []CheckResult) {
	what := "hub Deployment " + c.SystemNamespace + "/" + HubDeployment
	var d appsv1.Deployment
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: c.SystemNamespace, Name: HubDeployment}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return "", []CheckResult{{Failed, what, "not found (flotilla install)"}}
		}
		return "", []CheckResult{{Failed, what, err.Error()}}
	}
	image := ""
	for _, ct := range d.Spec.Template.Spec.Containers {
		if ct.Name == HubContainer {
			image = ct.Image
		}
	}
	hubVersion := imageTag(image)
	available := false
	msg := "no Available condition yet"
	for _, cond := range d.Status.Conditions {
		if cond.Type == appsv1.DeploymentAvailable {
			available = cond.Status == corev1.ConditionTrue
			msg = cond.Message
		}
	}
	if !available || d.Status.UpdatedReplicas < 1 || d.Status.AvailableReplicas < 1 {
		return hubVersion, []CheckResult{{Failed, what, fmt.Sprintf("not available (%d/%d replicas ready): %s; image %s", d.Status.ReadyReplicas, ptrInt(d.Spec.Replicas), msg, image)}}
	}
	res := []CheckResult{{Passed, what, "available, image " + image}}
	if hubVersion != "" && hubVersion != version.Version {
		res = append(res, CheckResult{Warning, "hub version", fmt.Sprintf("the hub runs %s, this CLI is %s", hubVersion, version.Version)})
	}
	return hubVersion, res
}

func ptrInt(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// imageTag is the tag of an image reference, "" for none or a digest only.
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		return image[i+1:]
	}
	return ""
}

// HubRules are the RBAC rules of the hub's install (deploy/hub): the ClusterRole's,
// and the Role's in the system namespace.
func HubRules() (cluster, system []rbacv1.PolicyRule, err error) {
	objs, err := BuildKustomization(deploy.HubKustomization)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole", "Role":
			var r rbacv1.Role // same rules field
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
				return nil, nil, err
			}
			if o.GetKind() == "ClusterRole" {
				cluster = append(cluster, r.Rules...)
			} else {
				system = append(system, r.Rules...)
			}
		}
	}
	if len(cluster) == 0 {
		return nil, nil, errors.New("deploy/hub has no ClusterRole")
	}
	return cluster, system, nil
}

// rbac asks the API server, with SubjectAccessReviews, whether the hub's
// ServiceAccount may do everything its install grants.
func (c *Checker) rbac(ctx context.Context) []CheckResult {
	what := "RBAC of " + c.SystemNamespace + "/" + HubServiceAccount
	cluster, system, err := HubRules()
	if err != nil {
		return []CheckResult{{Failed, what, err.Error()}}
	}
	type ask struct {
		ns                         string
		group, resource, sub, verb string
	}
	var asks []ask
	add := func(ns string, rules []rbacv1.PolicyRule) {
		for _, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					resource, sub, _ := strings.Cut(res, "/")
					for _, v := range r.Verbs {
						asks = append(asks, ask{ns, g, resource, sub, v})
					}
				}
			}
		}
	}
	add("", cluster)
	add(c.SystemNamespace, system)
	user := "system:serviceaccount:" + c.SystemNamespace + ":" + HubServiceAccount
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + c.SystemNamespace, "system:authenticated"}
	var (
		mu      sync.Mutex
		denied  []string
		errs    []error
		wg      sync.WaitGroup
		workers = make(chan struct{}, 8)
	)
	for _, a := range asks {
		wg.Add(1)
		workers <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-workers }()
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user, Groups: groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: a.ns, Group: a.group, Resource: a.resource, Subresource: a.sub, Verb: a.verb},
			}}
			err := c.Client.Create(ctx, sar)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if !sar.Status.Allowed {
				r := a.resource
				if a.sub != "" {
					r += "/" + a.sub
				}
				if a.group != "" {
					r += "." + a.group
				}
				if a.ns != "" {
					r += " in " + a.ns
				}
				denied = append(denied, a.verb+" "+r)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return []CheckResult{{Failed, what, "cannot ask the API server: " + errs[0].Error()}}
	}
	if len(denied) > 0 {
		sort.Strings(denied)
		return []CheckResult{{Failed, what, fmt.Sprintf("%d of %d permissions missing: %s (flotilla install restores them)", len(denied), len(asks), strings.Join(denied, ", "))}}
	}
	return []CheckResult{{Passed, what, fmt.Sprintf("all %d permissions of the install granted", len(asks))}}
}

// hubInfo checks what the running hub published for spokes: the artifact server
// answers over HTTPS with the hub's CA, and the API server address is the one
// this CLI uses.
func (c *Checker) hubInfo(ctx context.Context) []CheckResult {
	info, err := registration.ReadHubInfo(ctx, c.Client, c.SystemNamespace)
	if err != nil {
		return []CheckResult{{Failed, "artifact server", err.Error()}}
	}
	var res []CheckResult
	base := strings.TrimSuffix(info.RegistrationURL, "/register")
	if err := reachable(ctx, base, info.RegistrationCA, c.HTTPTimeout); err != nil {
		res = append(res, CheckResult{Failed, "artifact server", fmt.Sprintf("%s is not reachable from here: %v (spokes must reach it: expose the Service flotilla-artifacts and set flotilla install --artifact-url)", base, err)})
	} else {
		res = append(res, CheckResult{Passed, "artifact server", base + " answers over HTTPS with the hub's certificate"})
	}
	if c.CLIServer != "" && strings.TrimSuffix(info.Server, "/") != strings.TrimSuffix(c.CLIServer, "/") {
		res = append(res, CheckResult{Warning, "hub API server", fmt.Sprintf("agents are told to reach it at %s, this CLI reaches it at %s (flotilla install --hub-server)", info.Server, c.CLIServer)})
	} else {
		res = append(res, CheckResult{Passed, "hub API server", "agents reach it at " + info.Server})
	}
	return res
}

// reachable makes one HTTPS request; any HTTP answer counts.
func reachable(ctx context.Context, base string, caPEM []byte, timeout time.Duration) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("the hub listens on every address but was given none to publish (flotilla install --artifact-url)")
	}
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return errors.New("the hub's published CA does not parse")
		}
		tlsConfig.RootCAs = pool
	}
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: http.ProxyFromEnvironment}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/register", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// agents compares each Cluster's agent with the hub: Ready, and at most one minor
// version apart.
func (c *Checker) agents(ctx context.Context, hubVersion string) []CheckResult {
	var list fleetv1.ClusterList
	if err := c.Client.List(ctx, &list); err != nil {
		return []CheckResult{{Failed, "agents", err.Error()}}
	}
	if len(list.Items) == 0 {
		return []CheckResult{{Passed, "agents", "no cluster registered yet (flotilla cluster add)"}}
	}
	if hubVersion == "" {
		hubVersion = version.Version
	}
	var res []CheckResult
	ok, same := 0, 0
	for _, cl := range list.Items {
		if cond := apimeta.FindStatusCondition(cl.Status.Conditions, meta.ReadyCondition); cond == nil || cond.Status != "True" {
			detail := "no heartbeat yet"
			if cond != nil {
				detail = cond.Reason + ": " + cond.Message
			}
			res = append(res, CheckResult{Failed, "cluster " + cl.Name, "not Ready: " + detail})
			continue
		}
		ok++
		switch skew := versionSkew(hubVersion, cl.Status.AgentVersion); {
		case skew == 0:
			same++
		case skew == 1:
			res = append(res, CheckResult{Warning, "cluster " + cl.Name, fmt.Sprintf("agent %s, hub %s: one minor version apart, which works; upgrade the agent", cl.Status.AgentVersion, hubVersion)})
		case skew < 0:
			res = append(res, CheckResult{Warning, "cluster " + cl.Name, fmt.Sprintf("agent %s, hub %s", cl.Status.AgentVersion, hubVersion)})
		default:
			res = append(res, CheckResult{Failed, "cluster " + cl.Name, fmt.Sprintf("agent %s, hub %s: more than one minor version apart", cl.Status.AgentVersion, hubVersion)})
		}
	}
	res = append([]CheckResult{{Passed, "agents", fmt.Sprintf("%d of %d clusters Ready, %d with the hub's version", ok, len(list.Items), same)}}, res...)
	return res
}

// versionSkew is how many minor versions apart two versions are: 0 when equal, -1
// when they differ and either is not semver (e.g. a development build).
func versionSkew(a, b string) int {
	if a == b {
		return 0
	}
	va, err1 := semver.NewVersion(a)
	vb, err2 := semver.NewVersion(b)
	if err1 != nil || err2 != nil {
		return -1
	}
	if va.Major() != vb.Major() {
		return 2
	}
	d := int(va.Minor()) - int(vb.Minor())
	if d < 0 {
		d = -d
	}
	if d == 0 && !va.Equal(vb) {
		return 1
	}
	return d
}

func newCheckCommand(g *globals) *cobra.Command {
	var systemNamespace string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Tell what is wrong with the hub's install: CRDs, Deployment, RBAC, artifact server, agents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.restConfig()
			if err != nil {
				return err
			}
			c, err := NewCheckClient(cfg)
			if err != nil {
				return err
			}
			ck := &Checker{Client: c, SystemNamespace: systemNamespace, CLIServer: cfg.Host}
			failed := 0
			for _, r := range ck.Run(cmd.Context()) {
				fmt.Fprintf(g.out, "%s %s: %s\n", r.Outcome.mark(), r.What, r.Detail)
				if r.Outcome == Failed {
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed", failed)
			}
			fmt.Fprintln(g.out, "all checks passed")
			return nil
		},
	}
	cmd.Flags().StringVar(&systemNamespace, "system-namespace", manager.DefaultSystemNamespace, "the hub's system namespace")
	return cmd
}

// NewCheckClient is a client for Checker: the Flotilla kinds, Kubernetes' and CRDs.
func NewCheckClient(cfg *rest.Config) (client.Client, error) {
	// The RBAC check asks about every permission of the install, some 200 small
	// requests: client-go's default 5 per second would take a minute.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	s := api.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: s})
}
