// Package trust owns the agent's set of trusted hub keys: the keys it got at
// registration, and how it takes up a newer set from the trust bundle the hub
// publishes, only when a key it already trusts signed that bundle and its sequence
// number is newer. The set survives restarts in a file in the agent's state folder.
package trust
