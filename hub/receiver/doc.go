// Package receiver owns the Receiver kind on the hub: the controller that gives each
// Receiver its webhook path, and the HTTP handler under /hook/ that verifies a call
// (HMAC signature or token, by type), filters its event and asks the hub to
// reconcile the Receiver's resources at once (the reconcile-requested-at annotation).
package receiver
