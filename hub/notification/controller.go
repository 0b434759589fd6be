package notification

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/api/conditions"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/tenancy"
	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// errSettings marks a Provider whose settings cannot be used until they change.
var errSettings = errors.New("invalid provider settings")

// errSecretMissing marks a Provider naming a Secret that is not there.
var errSecretMissing = fmt.Errorf("%w", errSettings)

// Providers resolves Providers for sending: their Secrets are read uncached, and only
// in the Provider's own namespace.
type Providers struct {
	Client client.Client
	Reader client.Reader
	// Egress is what a tenant's Provider may make the hub dial, its address and its
	// proxy alike (tenancy/egress); the default rules when nil. Providers in
	// namespaces no Tenant owns are not restricted.
	Egress *egress.Policy
}

// Resolve reads the Provider and what it names; it is the Dispatcher's Resolver.
func (p *Providers) Resolve(ctx context.Context, key types.NamespacedName) (Target, *http.Client, bool, error) {
	var pr notificationv1.Provider
	if err := p.Client.Get(ctx, key, &pr); err != nil {
		return Target{}, nil, false, fmt.Errorf("provider %s: %w", key, err)
	}
	t, _, c, err := p.resolve(ctx, &pr)
	return t, c, pr.Spec.Suspend, err
}

// resolve returns the Target, the proxy (spec.proxy or the Secret's) and the client.
func (p *Providers) resolve(ctx context.Context, pr *notificationv1.Provider) (Target, string, *http.Client, error) {
	s := pr.Spec
	t := Target{Type: s.Type, Address: s.Address, Channel: s.Channel, Username: s.Username}
	proxy := s.Proxy
	if s.SecretRef != nil {
		sec, err := p.secret(ctx, pr.Namespace, s.SecretRef.Name)
		if err != nil {
			return t, proxy, nil, err
		}
		if v, ok := sec.Data["address"]; ok {
			t.Address = string(v)
		}
		if v, ok := sec.Data["proxy"]; ok {
			proxy = string(v)
		}
		t.Token = string(sec.Data["token"])
		if v, ok := sec.Data["headers"]; ok {
			if err := yaml.Unmarshal(v, &t.Headers); err != nil {
				return t, proxy, nil, fmt.Errorf("%w: Secret %s key headers is not a YAML map of strings: %v", errSettings, s.SecretRef.Name, err)
			}
		}
	}
	if err := httpURL("address", t.Address); err != nil {
		return t, proxy, nil, err
	}
	if t.Type == notificationv1.GenericHMACProvider && t.Token == "" {
		return t, proxy, nil, fmt.Errorf("%w: generic-hmac needs the key in the token of spec.secretRef", errSettings)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	restricted, err := tenancy.Claimed(ctx, p.Client, pr.Namespace)
	if err != nil {
		return t, proxy, nil, err
	}
	if restricted {
		// Every dial of this client, to the address or to the proxy, is held to the
		// policy on the request's own context, after name resolution.
		d, policy := egress.NewDialer(), p.Egress
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(egress.Restrict(ctx, policy), network, addr)
		}
	}
	if proxy != "" {
		if err := httpURL("proxy", proxy); err != nil {
			return t, proxy, nil, err
		}
		u, _ := url.Parse(proxy)
		tr.Proxy = http.ProxyURL(u)
	}
	if s.CertSecretRef != nil {
		sec, err := p.secret(ctx, pr.Namespace, s.CertSecretRef.Name)
		if err != nil {
			return t, proxy, nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(sec.Data["ca.crt"]) {
			return t, proxy, nil, fmt.Errorf("%w: Secret %s has no PEM certificate in ca.crt", errSettings, s.CertSecretRef.Name)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	timeout := 15 * time.Second
	if s.Timeout != nil && s.Timeout.Duration > 0 {
		timeout = s.Timeout.Duration
	}
	return t, proxy, &http.Client{Transport: tr, Timeout: timeout,
		// A webhook that redirects elsewhere is not followed: the address is what the tenant chose.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// egressRefusal looks the hosts of a tenant's Provider (its address and proxy) up
// and returns the first refusal the policy gives one of their addresses, so that the
// Provider's status says so before a message is lost. Only a hint: the dial itself
// is what is checked, whatever the name resolves to then. A name that does not
// resolve now is not refused here.
func (p *Providers) egressRefusal(ctx context.Context, t Target, proxy string) *egress.Refusal {
	for _, raw := range []string{t.Address, proxy} {
		u, err := url.Parse(raw)
		if raw == "" || err != nil {
			continue
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ref := p.Egress.Check(a); ref != nil {
				ref.Host = net.JoinHostPort(host, port)
				return ref
			}
		}
	}
	return nil
}

// secret reads a Secret of the Provider's own namespace: no field can name another.
func (p *Providers) secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	var sec corev1.Secret
	if err := p.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: Secret %s not found in namespace %s", errSecretMissing, name, namespace)
		}
		return nil, err
	}
	return &sec, nil
}

func httpURL(field, s string) error {
	u, err := url.Parse(s)
	if s == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %s must be an http(s) URL", errSettings, field)
	}
	return nil
}

// ProviderReconciler reports whether each Provider can send.
type ProviderReconciler struct {
	Client    client.Client
	Providers *Providers
	// Recorder emits a Warning Event when a tenant's Provider names an address
	// tenants may not reach; no Events when nil.
	Recorder events.EventRecorder
}

// SetupWithManager registers the controller.
func (r *ProviderReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&notificationv1.Provider{}).Named("provider").Complete(r)
}

// Reconcile resolves the Provider and sets its conditions.
func (r *ProviderReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var pr notificationv1.Provider
	if err := r.Client.Get(ctx, req.NamespacedName, &pr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := pr.DeepCopy()
	defer func() { patchStatus(ctx, r.Client, before, &pr, &pr.Status.ObservedGeneration, &result, &retErr) }()
	if pr.Spec.Suspend {
		conditions.MarkReady(&pr, meta.SuspendedReason, "suspended: messages for this Provider are dropped")
		return ctrl.Result{}, nil
	}
	t, proxy, _, err := r.Providers.resolve(ctx, &pr)
	if err == nil {
		if restricted, lerr := tenancy.Claimed(ctx, r.Providers.Client, pr.Namespace); lerr != nil {
			return ctrl.Result{}, lerr
		} else if restricted {
			if ref := r.Providers.egressRefusal(ctx, t, proxy); ref != nil {
				readyBefore := conditions.Get(&pr, meta.ReadyCondition).DeepCopy()
				conditions.MarkStalled(&pr, tenancyv1.EgressNotAllowedReason, ref.Error())
				if r.Recorder != nil && (readyBefore == nil || readyBefore.Reason != tenancyv1.EgressNotAllowedReason || readyBefore.Message != ref.Error()) {
					r.Recorder.Eventf(&pr, nil, corev1.EventTypeWarning, tenancyv1.EgressNotAllowedReason, "Resolve", "%s", ref.Error())
				}
				// What the names resolve to may change: look again now and then.
				return ctrl.Result{RequeueAfter: time.Minute}, nil
			}
		}
	}
	switch {
	case errors.Is(err, errSettings):
		reason := notificationv1.InvalidProviderReason
		if errors.Is(err, errSecretMissing) {
			reason = notificationv1.SecretNotFoundReason
		}
		conditions.MarkStalled(&pr, reason, err.Error())
		// Secrets are not watched (they are read uncached): look again now and then.
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	case err != nil:
		conditions.MarkFailed(&pr, notificationv1.InvalidProviderReason, err.Error())
		return ctrl.Result{}, err
	}
	conditions.MarkReady(&pr, meta.SucceededReason, "ready to send ("+pr.Spec.Type+")")
	return ctrl.Result{}, nil
}

// AlertReconciler reports whether each Alert is in force: its Provider exists, its
// expressions compile, and its event sources are within its tenant's namespaces.
type AlertReconciler struct {
	Client             client.Client
	PlatformNamespaces []string
}

// SetupWithManager registers the controller.
func (r *AlertReconciler) SetupWithManager(mgr ctrl.Manager) error {
	alertsIn := func(ctx context.Context, ns string) []reconcile.Request {
		var list notificationv1.AlertList
		if err := r.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for _, a := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
		}
		return out
	}
	return ctrl.NewControllerManagedBy(mgr).For(&notificationv1.Alert{}).
		Watches(&notificationv1.Provider{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return alertsIn(ctx, o.GetNamespace())
		})).
		// A Tenant's namespaces decide which event sources its Alerts may name.
		Watches(&tenancyv1.Tenant{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
			return alertsIn(ctx, "")
		})).
		Named("alert").Complete(r)
}

// Reconcile checks the Alert and sets its conditions.
func (r *AlertReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	var a notificationv1.Alert
	if err := r.Client.Get(ctx, req.NamespacedName, &a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := a.DeepCopy()
	defer func() { patchStatus(ctx, r.Client, before, &a, &a.Status.ObservedGeneration, &result, &retErr) }()
	var tenants tenancyv1.TenantList
	if err := r.Client.List(ctx, &tenants); err != nil {
		return ctrl.Result{}, err
	}
	if d := tenancy.DecideAlert(&a, tenants.Items, r.PlatformNamespaces); d.Refused() {
		conditions.MarkStalled(&a, d.Reason, d.Message)
		return ctrl.Result{}, nil
	}
	if _, err := NewFilter(&a); err != nil {
		conditions.MarkStalled(&a, notificationv1.InvalidExpressionReason, err.Error())
		return ctrl.Result{}, nil
	}
	var pr notificationv1.Provider
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.ProviderRef.Name}, &pr); err != nil {
		if apierrors.IsNotFound(err) {
			conditions.MarkFailed(&a, notificationv1.ProviderNotFoundReason, "Provider "+a.Spec.ProviderRef.Name+" not found in namespace "+a.Namespace)
			return ctrl.Result{}, nil // the Provider's creation wakes the Alert
		}
		return ctrl.Result{}, err
	}
	if a.Spec.Suspend {
		conditions.MarkReady(&a, meta.SuspendedReason, "suspended: events are dropped")
		return ctrl.Result{}, nil
	}
	conditions.MarkReady(&a, meta.SucceededReason, fmt.Sprintf("sending %s events of %d sources to Provider %s", orSeverity(a.Spec.EventSeverity), len(a.Spec.EventSources), pr.Name))
	return ctrl.Result{}, nil
}

func orSeverity(s string) string { return or(s, SeverityInfo) }

// patchStatus writes the status once per reconcile when it changed; the generation
// counts as observed unless the reconcile failed.
func patchStatus(ctx context.Context, c client.Client, before, obj client.Object, observed *int64, result *ctrl.Result, retErr *error) {
	if *retErr == nil {
		*observed = obj.GetGeneration()
	}
	if equality.Semantic.DeepEqual(before, obj) {
		return
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		*retErr = kerrors.NewAggregate([]error{*retErr, err})
		*result = ctrl.Result{}
	}
}
