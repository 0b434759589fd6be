// Package registration is the wire protocol between an agent that registers and the
// hub's /register endpoint, and the names both sides agree on. It is shared by
// hub/registration and spoke/bootstrap, so neither copies the other.
package registration
