package notification

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flotilla-dev/flotilla/api"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	tenancyv1 "github.com/flotilla-dev/flotilla/api/tenancy/v1alpha1"
	"github.com/flotilla-dev/flotilla/tenancy/egress"
)

// A tenant's Provider gets a client whose every dial, to the address or to the
// proxy, is held to the egress policy; a platform Provider's is not; a refused send
// is not tried again.
func TestProviderClientEgress(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	tenant := &tenancyv1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: tenancyv1.TenantSpec{Namespaces: []string{"team"}}}
	c := fake.NewClientBuilder().WithScheme(api.NewScheme()).WithObjects(tenant).Build()
	msg := Message{Event: Event{Kind: "GitRepository", Namespace: "team", Name: "app", Severity: SeverityError, Reason: "Failed", Message: "x", Time: time.Now()}}

	cases := []struct {
		name, ns, address, proxy string
		policy                   *egress.Policy
		refused                  bool
	}{
		{"tenant, address on loopback", "team", srv.URL, "", nil, true},
		{"tenant, proxy on loopback", "team", "http://hooks.example.com/hook", srv.URL, nil, true},
		{"tenant, loopback allowed", "team", srv.URL, "", egress.NewPolicy(netip.MustParsePrefix("127.0.0.0/8")), false},
		{"platform", "platform", srv.URL, "", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			p := &Providers{Client: c, Reader: c, Egress: tc.policy}
			pr := &notificationv1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: tc.ns, Name: "hook"},
				Spec: notificationv1.ProviderSpec{Type: notificationv1.GenericProvider, Address: tc.address, Proxy: tc.proxy}}
			target, _, hc, err := p.resolve(context.Background(), pr)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := send(context.Background(), hc, target, msg)
			var ref *egress.Refusal
			switch {
			case tc.refused && (!errors.As(err, &ref) || ref.Rule != "loopback"):
				t.Fatalf("send: %v, want a loopback refusal", err)
			case tc.refused && retry:
				t.Error("a refused send is to be tried again")
			case tc.refused && hits.Load() != before:
				t.Error("the server received the refused message")
			case !tc.refused && (err != nil || hits.Load() != before+1):
				t.Errorf("send: %v, server hits %d → %d; want it delivered", err, before, hits.Load())
			}
		})
	}
}
