package notification

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

var stalled = Message{Summary: "prod fleet", Event: Event{
	Kind: "Kustomization", Namespace: "team-a", Name: "app", Severity: SeverityError, Reason: RolloutStalledReason,
	Message:  "rollout of revision main@sha1:" + sha + " stalled on cluster spoke-2: boom",
	Metadata: map[string]string{RevisionKey: "main@sha1:" + sha, ClusterKey: "spoke-2"},
	Time:     time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC),
}}

func body(t *testing.T, typ, addr, token string, m Message) (string, map[string]any, map[string][]string) {
	t.Helper()
	req, err := Request(context.Background(), Target{Type: typ, Address: addr, Token: token, Channel: "#fleet"}, m)
	if err != nil {
		t.Fatal(err)
	}
	if req == nil {
		return "", nil, nil
	}
	raw, _ := io.ReadAll(req.Body)
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s body is not JSON: %v: %s", typ, err, raw)
	}
	return req.URL.String(), got, req.Header
}

func jsonMap(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPayloads(t *testing.T) {
	text := "prod fleet\\nrollout of revision main@sha1:" + sha + " stalled on cluster spoke-2: boom"
	for _, tc := range []struct {
		typ, addr, wantURL, want string
	}{{
		notificationv1.SlackProvider, "https://hooks.example/s", "https://hooks.example/s", `{"channel":"#fleet","username":"flotilla","attachments":[{
		"color":"danger","title":"Kustomization/team-a/app","text":"` + text + `","footer":"RolloutStalled","ts":1796068800,
		"fields":[{"title":"cluster","value":"spoke-2","short":false},{"title":"revision","value":"main@sha1:` + sha + `","short":false}]}]}`,
	}, {
		notificationv1.MSTeamsProvider, "https://teams.example/w", "https://teams.example/w", `{"@type":"MessageCard","@context":"https://schema.org/extensions",
		"themeColor":"d32f2f","summary":"Kustomization/team-a/app","sections":[{"activityTitle":"Kustomization/team-a/app","activitySubtitle":"RolloutStalled",
		"text":"` + text + `","facts":[{"name":"cluster","value":"spoke-2"},{"name":"revision","value":"main@sha1:` + sha + `"}]}]}`,
	}, {
		notificationv1.DiscordProvider, "https://discord.example/api/webhooks/1/x", "https://discord.example/api/webhooks/1/x", `{"username":"flotilla","embeds":[{
		"title":"Kustomization/team-a/app","description":"` + text + `","color":13840175,"footer":{"text":"RolloutStalled"},"timestamp":"2026-11-30T20:00:00Z",
		"fields":[{"name":"cluster","value":"spoke-2","inline":false},{"name":"revision","value":"main@sha1:` + sha + `","inline":false}]}]}`,
	}, {
		notificationv1.GoogleChatProvider, "https://chat.example/v1", "https://chat.example/v1",
		`{"text":"*Kustomization/team-a/app*\n` + text + `\ncluster: spoke-2\nrevision: main@sha1:` + sha + `"}`,
	}, {
		notificationv1.GenericProvider, "http://hook.example/in", "http://hook.example/in", `{"involvedObject":{"kind":"Kustomization","namespace":"team-a","name":"app"},
		"severity":"error","timestamp":"2026-11-30T20:00:00Z","reason":"RolloutStalled","message":"rollout of revision main@sha1:` + sha + ` stalled on cluster spoke-2: boom",
		"summary":"prod fleet","metadata":{"cluster":"spoke-2","revision":"main@sha1:` + sha + `"},"reportingController":"flotilla-hub"}`,
	}, {
		notificationv1.GitHubProvider, "https://github.com/org/repo", "https://api.github.com/repos/org/repo/statuses/" + sha,
		`{"state":"failure","context":"flotilla/kustomization/team-a/app","description":"rollout of revision main@sha1:` + sha + ` stalled on cluster spoke-2: boom"}`,
	}, {
		notificationv1.GitHubProvider, "https://ghe.example/org/repo.git", "https://ghe.example/api/v3/repos/org/repo/statuses/" + sha,
		`{"state":"failure","context":"flotilla/kustomization/team-a/app","description":"rollout of revision main@sha1:` + sha + ` stalled on cluster spoke-2: boom"}`,
	}, {
		notificationv1.GitLabProvider, "https://gitlab.example/group/sub/proj", "https://gitlab.example/api/v4/projects/group%2Fsub%2Fproj/statuses/" + sha,
		`{"state":"failed","name":"flotilla/kustomization/team-a/app","description":"rollout of revision main@sha1:` + sha + ` stalled on cluster spoke-2: boom"}`,
	}} {
		t.Run(tc.typ, func(t *testing.T) {
			u, got, _ := body(t, tc.typ, tc.addr, "tok", stalled)
			if u != tc.wantURL {
				t.Errorf("URL %s, want %s", u, tc.wantURL)
			}
			if d := cmp.Diff(jsonMap(t, tc.want), got); d != "" {
				t.Errorf("payload (-want +got):\n%s", d)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	_, _, h := body(t, notificationv1.GitHubProvider, "https://github.com/org/repo", "ghp", stalled)
	if h["Authorization"][0] != "Bearer ghp" {
		t.Errorf("github Authorization %v", h["Authorization"])
	}
	_, _, h = body(t, notificationv1.GitLabProvider, "https://gitlab.com/g/p", "glp", stalled)
	if h["Private-Token"][0] != "glp" {
		t.Errorf("gitlab PRIVATE-TOKEN %v", h)
	}
	req, err := Request(context.Background(), Target{Type: notificationv1.GenericHMACProvider, Address: "https://h.example", Token: "key",
		Headers: map[string]string{"X-Env": "prod"}}, stalled)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(req.Body)
	mac := hmac.New(sha256.New, []byte("key"))
	mac.Write(raw)
	if got, want := req.Header.Get("X-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("X-Signature %q, want %q", got, want)
	}
	if req.Header.Get("X-Env") != "prod" {
		t.Errorf("the Secret's headers are not sent: %v", req.Header)
	}
}

func TestCommitStatusOnlyForRolloutStepsWithACommit(t *testing.T) {
	for _, m := range []Message{
		{Event: Event{Kind: "Kustomization", Reason: RolloutStalledReason, Metadata: map[string]string{RevisionKey: "6.1.0"}}},
		{Event: Event{Kind: "Kustomization", Reason: "BuildFailed", Metadata: map[string]string{RevisionKey: "main@sha1:" + sha}}},
	} {
		if u, _, _ := body(t, notificationv1.GitHubProvider, "https://github.com/o/r", "t", m); u != "" {
			t.Errorf("%s with revision %s made a commit status request to %s", m.Reason, m.Metadata[RevisionKey], u)
		}
	}
	started := stalled
	started.Reason = RolloutStartedReason
	if _, got, _ := body(t, notificationv1.GitHubProvider, "https://github.com/o/r", "t", started); got["state"] != "pending" {
		t.Errorf("RolloutStarted state %v, want pending", got["state"])
	}
	started.Reason = RolloutFinishedReason
	if _, got, _ := body(t, notificationv1.GitLabProvider, "https://gitlab.com/o/r", "t", started); got["state"] != "success" {
		t.Errorf("RolloutFinished state %v, want success", got["state"])
	}
}
