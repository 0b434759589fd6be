// Package credentials owns what every source kind reads from the Secret its
// spec.secretRef names: reading it (a missing Secret waits, it is never an error to
// back off on), parsing username and password, bearerToken, ca.crt, and identity with
// known_hosts into Credentials, the HTTP transport that trusts ca.crt, and telling a
// server's refusal of the credentials from other failures.
package credentials
