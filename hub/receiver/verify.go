package receiver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Bitbucket and some generic senders still sign with HMAC-SHA1.
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strings"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
)

// WebhookPath is the path a Receiver is served at: the prefix and the sha256 of its
// token, name and namespace. It cannot be guessed without the token, and it changes
// when the token does.
func WebhookPath(token, name, namespace string) string {
	sum := sha256.Sum256([]byte(token + name + namespace))
	return notificationv1.WebhookPathPrefix + hex.EncodeToString(sum[:])
}

// ErrNoSignature: the call carries no signature or token where its type needs one.
var ErrNoSignature = errors.New("no signature")

// ErrBadSignature: the call's signature or token does not match the Receiver's token.
var ErrBadSignature = errors.New("signature does not match")

// Verify checks that a call to a Receiver of type typ, with the given headers and
// body, was made by someone who knows token. Comparisons are constant-time.
func Verify(typ, token string, h http.Header, body []byte) error {
	switch typ {
	case notificationv1.GenericReceiver:
		return nil // the path, derived from the token, is the proof
	case notificationv1.GitLabReceiver:
		got := h.Get("X-Gitlab-Token")
		if got == "" {
			return fmt.Errorf("%w: X-Gitlab-Token is missing", ErrNoSignature)
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return fmt.Errorf("%w: X-Gitlab-Token", ErrBadSignature)
		}
		return nil
	case notificationv1.GitHubReceiver:
		return verifyHMAC("X-Hub-Signature-256", h.Get("X-Hub-Signature-256"), token, body, "sha256")
	case notificationv1.BitbucketReceiver:
		return verifyHMAC("X-Hub-Signature", h.Get("X-Hub-Signature"), token, body, "sha256", "sha1")
	case notificationv1.GenericHMACReceiver:
		return verifyHMAC("X-Signature", h.Get("X-Signature"), token, body, "sha256", "sha512", "sha1")
	default:
		return fmt.Errorf("unknown receiver type %q", typ)
	}
}

// verifyHMAC checks a header of the form <algorithm>=<hex HMAC of body with token>,
// the algorithm one of allowed.
func verifyHMAC(header, value, token string, body []byte, allowed ...string) error {
	if value == "" {
		return fmt.Errorf("%w: %s is missing", ErrNoSignature, header)
	}
	algo, sig, ok := strings.Cut(value, "=")
	if !ok || !slices.Contains(allowed, algo) {
		return fmt.Errorf("%w: %s is not of the form %s=<hex>", ErrBadSignature, header, allowed[0])
	}
	want, err := hex.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: %s is not hex", ErrBadSignature, header)
	}
	var newHash func() hash.Hash
	switch algo {
	case "sha256":
		newHash = sha256.New
	case "sha512":
		newHash = sha512.New
	case "sha1":
		newHash = sha1.New
	}
	mac := hmac.New(newHash, []byte(token))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), want) {
		return fmt.Errorf("%w: %s", ErrBadSignature, header)
	}
	return nil
}

// Sign is the HMAC a caller of the given algorithm (sha256, sha512, sha1) sends for
// body, as <algorithm>=<hex>: what GitHub puts in X-Hub-Signature-256, for example.
func Sign(algo, token string, body []byte) string {
	newHash := sha256.New
	switch algo {
	case "sha512":
		newHash = sha512.New
	case "sha1":
		newHash = sha1.New
	}
	mac := hmac.New(newHash, []byte(token))
	mac.Write(body)
	return algo + "=" + hex.EncodeToString(mac.Sum(nil))
}

// Event is the event a call of type typ announces, as the caller names it; empty
// for the generic types, which name none.
func Event(typ string, h http.Header) string {
	switch typ {
	case notificationv1.GitHubReceiver:
		return h.Get("X-GitHub-Event")
	case notificationv1.GitLabReceiver:
		return h.Get("X-Gitlab-Event")
	case notificationv1.BitbucketReceiver:
		return h.Get("X-Event-Key")
	}
	return ""
}

// Wanted reports whether a call announcing event should reconcile: a GitHub ping
// never does (GitHub sends one when the hook is made), an empty list takes every
// event, and otherwise the event must be listed (case-insensitive).
func Wanted(typ, event string, events []string) bool {
	if typ == notificationv1.GitHubReceiver && event == "ping" {
		return false
	}
	if len(events) == 0 || typ == notificationv1.GenericReceiver || typ == notificationv1.GenericHMACReceiver {
		return true
	}
	return slices.ContainsFunc(events, func(e string) bool { return strings.EqualFold(e, event) })
}
