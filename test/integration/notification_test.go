package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveryv1 "github.com/flotilla-dev/flotilla/api/delivery/v1alpha1"
	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	meta "github.com/flotilla-dev/flotilla/api/meta/v1alpha1"
	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	sourcev1 "github.com/flotilla-dev/flotilla/api/source/v1alpha1"
	"github.com/flotilla-dev/flotilla/test/env"
	"github.com/flotilla-dev/flotilla/test/fleetenv"
	"github.com/flotilla-dev/flotilla/test/gitserver"
)

// hooks stands in for Slack, Teams, Discord, GitHub's commit status API and a
// generic webhook: one local HTTP server recording each request by path, in the
// order it came. The generic webhook answers 503 while down is set.
type hooks struct {
	mu      sync.Mutex
	got     map[string][]hookRequest
	down    bool
	refused int
}

type hookRequest struct {
	Path, Auth string
	Header     http.Header
	Body       map[string]any
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	key := r.URL.Path
	if strings.HasPrefix(key, "/api/v3/") {
		key = "/github"
	}
	if key == "/generic" && h.down {
		h.refused++
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	h.got[key] = append(h.got[key], hookRequest{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Header: r.Header.Clone(), Body: body})
	w.WriteHeader(http.StatusOK)
}

func (h *hooks) requests(key string) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.got[key]...)
}

// texts picks one string of each request to key about object title (the message's
// text field, which differs per service).
func (h *hooks) texts(key, title string, text func(map[string]any) (title, text string)) []string {
	var out []string
	for _, r := range h.requests(key) {
		if ti, tx := text(r.Body); ti == title {
			out = append(out, tx)
		}
	}
	return out
}

func slackText(b map[string]any) (string, string) {
	a := b["attachments"].([]any)[0].(map[string]any)
	return a["title"].(string), a["text"].(string)
}

func teamsText(b map[string]any) (string, string) {
	return b["summary"].(string), b["sections"].([]any)[0].(map[string]any)["text"].(string)
}

func discordText(b map[string]any) (string, string) {
	e := b["embeds"].([]any)[0].(map[string]any)
	return e["title"].(string), e["description"].(string)
}

func genericText(b map[string]any) (string, string) {
	o := b["involvedObject"].(map[string]any)
	return fmt.Sprintf("%s/%s/%s", o["kind"], o["namespace"], o["name"]), b["message"].(string)
}

func wantTexts(t *testing.T, h *hooks, key, title string, text func(map[string]any) (string, string), want []string) {
	t.Helper()
	env.Eventually(t, key+" messages about "+title, func() error {
		got := h.texts(key, title, text)
		if len(got) < len(want) {
			return fmt.Errorf("%d of %d so far: %q", len(got), len(want), got)
		}
		if d := cmp.Diff(want, got); d != "" {
			return fmt.Errorf("messages (-want +got):\n%s", d)
		}
		return nil
	})
}

func TestNotification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fleet, ns, appNS := sharedFleet(t, "notify")
	hub := fleet.HubClient()
	spokes := map[string]target{}
	for _, s := range []string{"spoke-1", "spoke-2", "spoke-3"} {
		spokes[s] = spokeTarget(fleet, s, appNS)
	}
	h := &hooks{got: map[string][]hookRequest{}, down: true}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	// The generic webhook's address and headers come from a Secret, GitHub's token too.
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "generic"}, StringData: map[string]string{
			"address": srv.URL + "/generic", "headers": "X-Fleet: prod\n", "token": "s3cret"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github"}, StringData: map[string]string{"token": "ghp_test"}},
		provider(ns, "slack", notificationv1.ProviderSpec{Type: notificationv1.SlackProvider, Address: srv.URL + "/slack", Channel: "#fleet"}),
		provider(ns, "teams", notificationv1.ProviderSpec{Type: notificationv1.MSTeamsProvider, Address: srv.URL + "/teams"}),
		provider(ns, "discord", notificationv1.ProviderSpec{Type: notificationv1.DiscordProvider, Address: srv.URL + "/discord"}),
		provider(ns, "github", notificationv1.ProviderSpec{Type: notificationv1.GitHubProvider, Address: srv.URL + "/org/repo",
			SecretRef: &meta.LocalObjectReference{Name: "github"}}),
		provider(ns, "generic", notificationv1.ProviderSpec{Type: notificationv1.GenericProvider, SecretRef: &meta.LocalObjectReference{Name: "generic"}}),
		// Slack is spared the stage messages: the exclusion list works on the message.
		alert(ns, "slack", func(s *notificationv1.AlertSpec) {
			s.ExclusionList = []string{`stage (\S+ )?of revision`}
			s.Summary = "e2e fleet"
		}),
		alert(ns, "teams", nil), alert(ns, "discord", nil), alert(ns, "github", nil), alert(ns, "generic", nil),
	}
	for _, o := range objs {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"slack", "teams", "discord", "github", "generic"} {
		env.WaitReady(t, hub, &notificationv1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
		env.WaitReady(t, hub, &notificationv1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	}

	t.Run("the API server refuses bad input", func(t *testing.T) {
		for _, o := range []client.Object{
			provider(ns, "ftp", notificationv1.ProviderSpec{Type: notificationv1.GenericProvider, Address: "ftp://example.com/x"}),
			provider(ns, "smtp", notificationv1.ProviderSpec{Type: "smtp", Address: "https://example.com"}),
			provider(ns, "proxy", notificationv1.ProviderSpec{Type: notificationv1.SlackProvider, Address: "https://example.com", Proxy: "socks5://p:1080"}),
			provider(ns, "nowhere", notificationv1.ProviderSpec{Type: notificationv1.GitHubProvider}),
			alert(ns, "severity", func(s *notificationv1.AlertSpec) { s.EventSeverity = "debug" }),
			alert(ns, "secrets", func(s *notificationv1.AlertSpec) {
				s.EventSources = []notificationv1.EventSource{{Kind: "Secret", Name: "*"}}
			}),
			alert(ns, "nothing", func(s *notificationv1.AlertSpec) { s.EventSources = nil }),
		} {
			if err := hub.Create(ctx, o); !apierrors.IsInvalid(err) {
				t.Errorf("%s %s: %v, want Invalid", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
			}
		}
	})

	git := gitserver.New(t)
	repo := git.CreateRepo("notify")
	rev1 := repo.Write(map[string]string{
		"app/kustomization.yaml": kustomization("ns.yaml", "a.yaml"),
		"app/ns.yaml":            namespace(appNS),
		"app/a.yaml":             configMap(appNS, "a", "one"),
		"bad/kustomization.yaml": kustomization("b.yaml"),
		"bad/b.yaml":             configMap(appNS, "b", "new"),
	})
	src := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "notify"},
		Spec:       sourcev1.GitRepositorySpec{URL: repo.URL(), Interval: metav1.Duration{Duration: time.Hour}},
	}
	one := intstr.FromInt32(1)
	ks := &deliveryv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: deliveryv1.KustomizationSpec{
			SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "notify"},
			Path:      "app", Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			Placement: byName("spoke-1", "spoke-2", "spoke-3"),
			Rollout: &deliveryv1.Rollout{MaxUnavailable: &one, Stages: []deliveryv1.RolloutStage{{
				Name: "canary", Pause: true, ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "spoke-1"}},
			}}},
		},
	}
	for _, o := range []client.Object{src, ks} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	title := "Kustomization/" + ns + "/app"

	t.Run("a rollout across 3 clusters sends one message per step, in order", func(t *testing.T) {
		rev := "main@sha1:" + rev1
		wantTexts(t, h, "/discord", title, discordText, []string{
			"rollout of revision " + rev + " started on 3 clusters",
			"stage canary of revision " + rev + " started",
			"rollout of revision " + rev + " paused after stage canary: 2 clusters wait for approval",
		})
		approve(t, hub, ks, "canary")
		wantCounts(t, hub, ks, meta.ClusterCounts{Targeted: 3, Applied: 3, Ready: 3}, rev1)
		all := []string{
			"rollout of revision " + rev + " started on 3 clusters",
			"stage canary of revision " + rev + " started",
			"rollout of revision " + rev + " paused after stage canary: 2 clusters wait for approval",
			"the remaining clusters' stage of revision " + rev + " started",
			"revision " + rev + " is ready on 3 of 3 clusters",
		}
		wantTexts(t, h, "/discord", title, discordText, all)
		wantTexts(t, h, "/teams", title, teamsText, all)
		// Slack: the stage messages excluded, the Alert's summary on top.
		wantTexts(t, h, "/slack", title, slackText, []string{"e2e fleet\n" + all[0], "e2e fleet\n" + all[2], "e2e fleet\n" + all[4]})

		// The exact payloads of the first message.
		first := h.requests("/slack")[0].Body
		wantJSON(t, "slack", first, `{"channel":"#fleet","username":"flotilla","attachments":[{"color":"good","title":"`+title+`",
			"text":`+q("e2e fleet\n"+all[0])+`,"footer":"RolloutStarted","ts":`+fmt.Sprint(first["attachments"].([]any)[0].(map[string]any)["ts"])+`,
			"fields":[{"title":"revision","value":"`+rev+`","short":false}]}]}`)
		wantJSON(t, "teams", h.requests("/teams")[0].Body, `{"@type":"MessageCard","@context":"https://schema.org/extensions","themeColor":"2e7d32",
			"summary":"`+title+`","sections":[{"activityTitle":"`+title+`","activitySubtitle":"RolloutStarted","text":"`+all[0]+`",
			"facts":[{"name":"revision","value":"`+rev+`"}]}]}`)
		d := h.requests("/discord")[0].Body
		wantJSON(t, "discord", d, `{"username":"flotilla","embeds":[{"title":"`+title+`","description":"`+all[0]+`","color":3046706,
			"footer":{"text":"RolloutStarted"},"timestamp":"`+d["embeds"].([]any)[0].(map[string]any)["timestamp"].(string)+`",
			"fields":[{"name":"revision","value":"`+rev+`","inline":false}]}]}`)

		// GitHub: a commit status per step on the commit being rolled out. Its
		// Provider is dispatched on its own: wait for its fifth status.
		env.Eventually(t, "GitHub's five commit statuses", func() error {
			if n := len(h.requests("/github")); n < 5 {
				return fmt.Errorf("%d commit statuses so far", n)
			}
			return nil
		})
		var states []string
		for _, r := range h.requests("/github") {
			if r.Path != "/api/v3/repos/org/repo/statuses/"+rev1 || r.Auth != "Bearer ghp_test" {
				t.Errorf("commit status request to %s with %q", r.Path, r.Auth)
			}
			if r.Body["context"] != "flotilla/kustomization/"+ns+"/app" {
				t.Errorf("commit status context %v", r.Body["context"])
			}
			states = append(states, r.Body["state"].(string))
		}
		if d := cmp.Diff([]string{"pending", "pending", "pending", "pending", "success"}, states); d != "" {
			t.Errorf("commit states (-want +got):\n%s", d)
		}
		wantJSON(t, "github", h.requests("/github")[4].Body, `{"state":"success","context":"flotilla/kustomization/`+ns+`/app","description":"`+all[4]+`"}`)
	})

	t.Run("a provider that is down is retried and does not stop the rollout", func(t *testing.T) {
		// The generic webhook has been down all along; the rollout above finished.
		h.mu.Lock()
		refused := h.refused
		h.down = false
		h.mu.Unlock()
		t.Logf("the generic webhook refused %d attempts while the rollout finished", refused)
		if refused < 2 {
			t.Errorf("the generic webhook refused %d requests, want it tried again", refused)
		}
		var want []string
		for _, s := range h.texts("/teams", title, teamsText) {
			want = append(want, s)
		}
		wantTexts(t, h, "/generic", title, genericText, want)
		g := h.requests("/generic")[0]
		if g.Header.Get("X-Fleet") != "prod" || g.Auth != "Bearer s3cret" {
			t.Errorf("the Secret's headers and token were not sent: %v", g.Header)
		}
		wantJSON(t, "generic", g.Body, `{"involvedObject":{"kind":"Kustomization","namespace":"`+ns+`","name":"app"},"severity":"info",
			"timestamp":"`+g.Body["timestamp"].(string)+`","reason":"RolloutStarted","message":"`+want[0]+`",
			"metadata":{"revision":"main@sha1:`+rev1+`"},"reportingController":"flotilla-hub"}`)
	})

	t.Run("drift corrected on every cluster is one message", func(t *testing.T) {
		for _, s := range []string{"spoke-1", "spoke-2", "spoke-3"} {
			editByHand(t, spokes[s], "a")
		}
		for _, s := range spokes {
			s.wantValue(t, "a", "one")
		}
		env.Eventually(t, "one drift message", func() error {
			var drift []string
			for _, s := range h.texts("/teams", title, teamsText) {
				if strings.Contains(s, "corrected") {
					drift = append(drift, s)
				}
			}
			if len(drift) != 1 || !strings.HasPrefix(drift[0], "3 clusters (spoke-1, spoke-2, spoke-3); cluster spoke-") {
				return fmt.Errorf("drift messages %q, want one naming the 3 clusters", drift)
			}
			return nil
		})
	})

	t.Run("a failure names the cluster", func(t *testing.T) {
		// A hand-made immutable ConfigMap on spoke-2: the API server refuses the new data.
		immutable := true
		if err := spokes["spoke-2"].c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "b"},
			Data: map[string]string{"value": "hand-made"}, Immutable: &immutable}); err != nil {
			t.Fatal(err)
		}
		bad := &deliveryv1.Kustomization{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
			Spec: deliveryv1.KustomizationSpec{
				SourceRef: deliveryv1.SourceReference{Kind: sourcev1.GitRepositoryKind, Name: "notify"},
				Path:      "bad", Prune: true, Interval: metav1.Duration{Duration: time.Hour},
				Placement: byName("spoke-2"), Rollout: &deliveryv1.Rollout{MaxUnavailable: &one},
			},
		}
		if err := hub.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
		badTitle := "Kustomization/" + ns + "/bad"
		env.Eventually(t, "the stalled message on Slack", func() error {
			got := h.texts("/slack", badTitle, slackText)
			if len(got) != 2 || !strings.HasPrefix(got[1], "e2e fleet\nrollout of revision main@sha1:"+rev1+" stalled on cluster spoke-2: ") {
				return fmt.Errorf("messages %q, want started then stalled on spoke-2", got)
			}
			return nil
		})
		for _, r := range h.requests("/slack") {
			a := r.Body["attachments"].([]any)[0].(map[string]any)
			if a["title"] == badTitle && a["footer"] == "RolloutStalled" {
				if a["color"] != "danger" || !strings.Contains(fmt.Sprint(a["fields"]), "spoke-2") {
					t.Errorf("stalled message %v: want danger and the cluster as a field", a)
				}
			}
		}
		// The GitHub Provider is dispatched on its own: its status may follow Slack's
		// message by a moment.
		env.Eventually(t, "the failure commit status", func() error {
			var states []string
			for _, r := range h.requests("/github") {
				if r.Body["context"] == "flotilla/kustomization/"+ns+"/bad" {
					states = append(states, r.Body["state"].(string))
				}
			}
			if len(states) == 0 || states[len(states)-1] != "failure" {
				return fmt.Errorf("commit states of bad %v, want it to end in failure", states)
			}
			return nil
		})
	})
}

func provider(ns, name string, spec notificationv1.ProviderSpec) *notificationv1.Provider {
	return &notificationv1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func alert(ns, provider string, mod func(*notificationv1.AlertSpec)) *notificationv1.Alert {
	a := &notificationv1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: provider}, Spec: notificationv1.AlertSpec{
		ProviderRef:  meta.LocalObjectReference{Name: provider},
		EventSources: []notificationv1.EventSource{{Kind: "Kustomization", Name: "*"}},
	}}
	if mod != nil {
		mod(&a.Spec)
	}
	return a
}

func approve(t *testing.T, c client.Client, ks *deliveryv1.Kustomization, stage string) {
	t.Helper()
	var cur deliveryv1.Kustomization
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(ks), &cur); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Annotations = map[string]string{deliveryv1.ApprovedStageAnnotation: stage + "@" + time.Now().Format(time.RFC3339Nano)}
	if err := c.Patch(context.Background(), &cur, patch); err != nil {
		t.Fatal(err)
	}
}

func wantJSON(t *testing.T, what string, got map[string]any, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: the wanted JSON: %v", what, err)
	}
	if d := cmp.Diff(w, got); d != "" {
		t.Errorf("%s payload (-want +got):\n%s", what, d)
	}
}

// q is s as a JSON string.
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestClusterNotifications stops one agent of a fleet of its own and checks that an
// Alert on Clusters is told the cluster is not ready, then that it is back.
func TestClusterNotifications(t *testing.T) {
	t.Parallel()
	const grace = 3 * time.Second
	ctx := context.Background()
	fleet := fleetenv.StartFleet(t, 2, fleetenv.WithHeartbeat(time.Second, grace))
	hub := fleet.HubClient()
	h := &hooks{got: map[string][]hookRequest{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// default is a platform namespace of a local fleet: its Alerts see every cluster.
	for _, o := range []client.Object{
		provider("default", "generic", notificationv1.ProviderSpec{Type: notificationv1.GenericProvider, Address: srv.URL + "/generic"}),
		alert("default", "generic", func(s *notificationv1.AlertSpec) {
			s.EventSources = []notificationv1.EventSource{{Kind: fleetv1.ClusterKind, Name: "spoke-1"}}
		}),
	} {
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	env.WaitReady(t, hub, &notificationv1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "generic"}})
	fleet.StopAgent("spoke-1")
	stopped := time.Now()
	messages := func() []string {
		var out []string
		for _, r := range h.requests("/generic") {
			_, text := genericText(r.Body)
			out = append(out, fmt.Sprintf("%s %s %s", r.Body["severity"], r.Body["reason"], text))
		}
		return out
	}
	env.Eventually(t, "spoke-1 not ready", func() error {
		if m := messages(); len(m) != 1 || !strings.HasPrefix(m[0], "error HeartbeatStale cluster spoke-1 is not ready: no agent heartbeat since ") {
			return fmt.Errorf("messages %q", m)
		}
		return nil
	})
	t.Logf("told spoke-1 is not ready %s after its agent stopped (grace %s)", time.Since(stopped).Round(100*time.Millisecond), grace)
	fleet.StartAgent("spoke-1")
	env.Eventually(t, "spoke-1 back", func() error {
		if m := messages(); len(m) != 2 || m[1] != "info HeartbeatFresh cluster spoke-1 is back: agent connected" {
			return fmt.Errorf("messages %q", m)
		}
		return nil
	})
	if g := h.requests("/generic")[0].Body; fmt.Sprint(g["involvedObject"]) != "map[kind:Cluster name:spoke-1]" || fmt.Sprint(g["metadata"]) != "map[cluster:spoke-1]" {
		t.Errorf("payload %v", g)
	}
}
