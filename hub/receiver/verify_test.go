package receiver

import (
	"errors"
	"net/http"
	"testing"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

func TestVerify(t *testing.T) {
	const token = "s3cret"
	body := []byte(`{"ref":"refs/heads/main"}`)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name string
		typ  string
		h    http.Header
		body []byte
		want error // nil, ErrNoSignature or ErrBadSignature
	}{
		{"github signed", notificationv1.GitHubReceiver, hdr("X-Hub-Signature-256", Sign("sha256", token, body)), body, nil},
		{"github unsigned", notificationv1.GitHubReceiver, hdr(), body, ErrNoSignature},
		{"github other token", notificationv1.GitHubReceiver, hdr("X-Hub-Signature-256", Sign("sha256", "guess", body)), body, ErrBadSignature},
		{"github body changed", notificationv1.GitHubReceiver, hdr("X-Hub-Signature-256", Sign("sha256", token, body)), []byte(`{"ref":"refs/heads/evil"}`), ErrBadSignature},
		{"github sha1 refused", notificationv1.GitHubReceiver, hdr("X-Hub-Signature-256", Sign("sha1", token, body)), body, ErrBadSignature},
		{"github not hex", notificationv1.GitHubReceiver, hdr("X-Hub-Signature-256", "sha256=zz"), body, ErrBadSignature},
		{"github old header only", notificationv1.GitHubReceiver, hdr("X-Hub-Signature", Sign("sha1", token, body)), body, ErrNoSignature},
		{"gitlab token", notificationv1.GitLabReceiver, hdr("X-Gitlab-Token", token), body, nil},
		{"gitlab no token", notificationv1.GitLabReceiver, hdr(), body, ErrNoSignature},
		{"gitlab wrong token", notificationv1.GitLabReceiver, hdr("X-Gitlab-Token", token+"x"), body, ErrBadSignature},
		{"gitlab prefix of token", notificationv1.GitLabReceiver, hdr("X-Gitlab-Token", token[:3]), body, ErrBadSignature},
		{"bitbucket sha256", notificationv1.BitbucketReceiver, hdr("X-Hub-Signature", Sign("sha256", token, body)), body, nil},
		{"bitbucket sha1", notificationv1.BitbucketReceiver, hdr("X-Hub-Signature", Sign("sha1", token, body)), body, nil},
		{"bitbucket unsigned", notificationv1.BitbucketReceiver, hdr(), body, ErrNoSignature},
		{"bitbucket wrong", notificationv1.BitbucketReceiver, hdr("X-Hub-Signature", Sign("sha256", "guess", body)), body, ErrBadSignature},
		{"generic needs nothing", notificationv1.GenericReceiver, hdr(), body, nil},
		{"generic-hmac sha256", notificationv1.GenericHMACReceiver, hdr("X-Signature", Sign("sha256", token, body)), body, nil},
		{"generic-hmac sha512", notificationv1.GenericHMACReceiver, hdr("X-Signature", Sign("sha512", token, body)), body, nil},
		{"generic-hmac unsigned", notificationv1.GenericHMACReceiver, hdr(), body, ErrNoSignature},
		{"generic-hmac no algorithm", notificationv1.GenericHMACReceiver, hdr("X-Signature", Sign("sha256", token, body)[len("sha256="):]), body, ErrBadSignature},
		{"generic-hmac md5", notificationv1.GenericHMACReceiver, hdr("X-Signature", "md5=00"), body, ErrBadSignature},
		{"generic-hmac wrong", notificationv1.GenericHMACReceiver, hdr("X-Signature", Sign("sha256", token, []byte("other"))), body, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.typ, token, tt.h, tt.body)
			if tt.want == nil && err != nil {
				t.Fatalf("Verify: %v, want nil", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
	if err := Verify("svn", token, hdr(), body); err == nil {
		t.Error("an unknown type verified")
	}
}

func TestWebhookPath(t *testing.T) {
	p := WebhookPath("token", "name", "ns")
	if want := "/hook/9f3f1bb97bc2396f3fa58dc72a9c08a57c02e524af1250535429cdb90db6028e"; p != want || !pathPattern.MatchString(p) {
		t.Fatalf("path %q, want %q (sha256 of token, name, namespace)", p, want)
	}
	for _, other := range []string{WebhookPath("token2", "name", "ns"), WebhookPath("token", "name2", "ns"), WebhookPath("token", "name", "ns2")} {
		if other == p {
			t.Errorf("token, name and namespace do not all change the path")
		}
	}
	if WebhookPath("token", "name", "ns") != p {
		t.Error("the path is not stable")
	}
}

func TestWanted(t *testing.T) {
	tests := []struct {
		typ, event string
		events     []string
		want       bool
	}{
		{notificationv1.GitHubReceiver, "push", nil, true},
		{notificationv1.GitHubReceiver, "ping", nil, false},
		{notificationv1.GitHubReceiver, "ping", []string{"ping"}, false},
		{notificationv1.GitHubReceiver, "push", []string{"push"}, true},
		{notificationv1.GitHubReceiver, "release", []string{"push"}, false},
		{notificationv1.GitLabReceiver, "Push Hook", []string{"push hook"}, true},
		{notificationv1.GitLabReceiver, "Tag Push Hook", []string{"Push Hook"}, false},
		{notificationv1.BitbucketReceiver, "repo:push", []string{"repo:push"}, true},
		{notificationv1.GenericReceiver, "", []string{"push"}, true},
		{notificationv1.GenericHMACReceiver, "", []string{"push"}, true},
	}
	for _, tt := range tests {
		if got := Wanted(tt.typ, tt.event, tt.events); got != tt.want {
			t.Errorf("Wanted(%s, %q, %v) = %v, want %v", tt.typ, tt.event, tt.events, got, tt.want)
		}
	}
}
