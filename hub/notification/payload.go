package notification

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

// Target is a Provider resolved for sending: its Secret's values read, the address
// chosen.
type Target struct {
	Type, Address, Token, Channel, Username string
	// Headers are added to every request (the Secret's `headers`).
	Headers map[string]string
}

// Message is one event as an Alert sends it.
type Message struct {
	Event
	// Summary is the Alert's spec.summary.
	Summary string
}

// title is the object the message is about: Kind/namespace/name.
func (m Message) title() string {
	if m.Namespace == "" {
		return m.Kind + "/" + m.Name
	}
	return m.Kind + "/" + m.Namespace + "/" + m.Name
}

// text is the message with the summary, when there is one, as its first line.
func (m Message) text() string {
	if m.Summary == "" {
		return m.Message
	}
	return m.Summary + "\n" + m.Message
}

// fields are the metadata in key order, the summary first.
func (m Message) fields() [][2]string {
	keys := make([]string, 0, len(m.Metadata))
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, [2]string{k, m.Metadata[k]})
	}
	return out
}

// Request builds the HTTP request a Target gets for a message; nil (and no error)
// when this type of Target has nothing to say about it (a commit status for an
// event without a commit, or one that does not change a rollout's state).
func Request(ctx context.Context, t Target, m Message) (*http.Request, error) {
	var body any
	addr := t.Address
	switch t.Type {
	case notificationv1.SlackProvider, notificationv1.RocketProvider:
		body = slackPayload(t, m)
	case notificationv1.MSTeamsProvider:
		body = teamsPayload(m)
	case notificationv1.DiscordProvider:
		body = discordPayload(t, m)
	case notificationv1.GoogleChatProvider:
		body = map[string]string{"text": "*" + m.title() + "*\n" + m.text() + fieldLines(m)}
	case notificationv1.GenericProvider, notificationv1.GenericHMACProvider:
		body = genericPayload(m)
	case notificationv1.GitHubProvider, notificationv1.GitLabProvider:
		return commitStatus(ctx, t, m)
	default:
		return nil, fmt.Errorf("provider type %q is not supported", t.Type)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case t.Type == notificationv1.GenericHMACProvider:
		mac := hmac.New(sha256.New, []byte(t.Token))
		mac.Write(raw)
		req.Header.Set("X-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	case t.Token != "" && t.Type == notificationv1.GenericProvider:
		req.Header.Set("Authorization", "Bearer "+t.Token)
	}
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	return req, nil
}

func fieldLines(m Message) string {
	var b strings.Builder
	for _, f := range m.fields() {
		fmt.Fprintf(&b, "\n%s: %s", f[0], f[1])
	}
	return b.String()
}

func color(m Message) (string, int) {
	if m.Severity == SeverityError {
		return "danger", 0xd32f2f
	}
	return "good", 0x2e7d32
}

func slackPayload(t Target, m Message) map[string]any {
	name, _ := color(m)
	var fields []map[string]any
	for _, f := range m.fields() {
		fields = append(fields, map[string]any{"title": f[0], "value": f[1], "short": false})
	}
	p := map[string]any{
		"username": or(t.Username, "flotilla"),
		"attachments": []map[string]any{{
			"color": name, "title": m.title(), "text": m.text(), "fields": fields,
			"footer": m.Reason, "ts": m.Time.Unix(),
		}},
	}
	if t.Channel != "" {
		p["channel"] = t.Channel
	}
	return p
}

func teamsPayload(m Message) map[string]any {
	_, hexColor := color(m)
	facts := []map[string]string{}
	for _, f := range m.fields() {
		facts = append(facts, map[string]string{"name": f[0], "value": f[1]})
	}
	return map[string]any{
		"@type": "MessageCard", "@context": "https://schema.org/extensions",
		"themeColor": fmt.Sprintf("%06x", hexColor), "summary": m.title(),
		"sections": []map[string]any{{"activityTitle": m.title(), "activitySubtitle": m.Reason, "text": m.text(), "facts": facts}},
	}
}

func discordPayload(t Target, m Message) map[string]any {
	_, c := color(m)
	fields := []map[string]any{}
	for _, f := range m.fields() {
		fields = append(fields, map[string]any{"name": f[0], "value": f[1], "inline": false})
	}
	return map[string]any{
		"username": or(t.Username, "flotilla"),
		"embeds": []map[string]any{{
			"title": m.title(), "description": m.text(), "color": c, "fields": fields,
			"footer": map[string]string{"text": m.Reason}, "timestamp": m.Time.UTC().Format(time.RFC3339),
		}},
	}
}

// GenericPayload is the JSON body of generic and generic-hmac Providers.
type GenericPayload struct {
	InvolvedObject GenericObject     `json:"involvedObject"`
	Severity       string            `json:"severity"`
	Timestamp      time.Time         `json:"timestamp"`
	Reason         string            `json:"reason"`
	Message        string            `json:"message"`
	Summary        string            `json:"summary,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Reporter       string            `json:"reportingController"`
}

// GenericObject names the object a generic payload is about.
type GenericObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func genericPayload(m Message) GenericPayload {
	return GenericPayload{
		InvolvedObject: GenericObject{Kind: m.Kind, Namespace: m.Namespace, Name: m.Name},
		Severity:       m.Severity, Timestamp: m.Time.UTC().Truncate(time.Second), Reason: m.Reason,
		Message: m.Message, Summary: m.Summary, Metadata: m.Metadata, Reporter: "flotilla-hub",
	}
}

// commitStates maps step events to commit states (GitHub's words; GitLab's differ
// for failure). Other events leave the commit's status as it is.
var commitStates = map[string]string{
	RolloutStartedReason: "pending", StageStartedReason: "pending", RolloutPausedReason: "pending",
	RolloutFinishedReason: "success", RolloutStalledReason: "failure", ClustersFailedReason: "failure",
}

// commitStatus is a commit status request on the revision's commit: the context
// names the deployment, so each deployment has its own status on the commit.
func commitStatus(ctx context.Context, t Target, m Message) (*http.Request, error) {
	sha, state := m.Commit(), commitStates[m.Reason]
	if sha == "" || state == "" {
		return nil, nil
	}
	repo, err := url.Parse(t.Address)
	if err != nil || repo.Host == "" {
		return nil, fmt.Errorf("address %q is not a repository URL", t.Address)
	}
	path := strings.TrimSuffix(strings.Trim(repo.Path, "/"), ".git")
	if strings.Count(path, "/") < 1 {
		return nil, fmt.Errorf("address %q does not name a repository (want https://host/owner/repository)", t.Address)
	}
	desc := m.Message
	if len(desc) > 140 {
		desc = desc[:137] + "..."
	}
	statusContext := "flotilla/" + strings.ToLower(m.Kind) + "/" + m.Namespace + "/" + m.Name
	var api string
	var body map[string]string
	base := repo.Scheme + "://" + repo.Host
	if t.Type == notificationv1.GitHubProvider {
		if repo.Host == "github.com" {
			base = "https://api.github.com"
		} else {
			base += "/api/v3" // GitHub Enterprise Server
		}
		api = fmt.Sprintf("%s/repos/%s/statuses/%s", base, path, sha)
		body = map[string]string{"state": state, "context": statusContext, "description": desc}
	} else {
		if state == "failure" {
			state = "failed"
		}
		api = fmt.Sprintf("%s/api/v4/projects/%s/statuses/%s", base, url.PathEscape(path), sha)
		body = map[string]string{"state": state, "name": statusContext, "description": desc}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.Type == notificationv1.GitHubProvider {
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("Authorization", "Bearer "+t.Token)
	} else {
		req.Header.Set("PRIVATE-TOKEN", t.Token)
	}
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	return req, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
