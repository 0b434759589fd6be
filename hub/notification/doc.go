// Package notification sends fleet events to the Providers tenants configure: it
// turns deployments' status changes into one event per rollout step, forwards the
// failures the hub's and agents' Kubernetes Events report (drift corrections
// aggregated over clusters), matches them against Alerts within each tenant's own
// namespaces, and delivers them off the reconcile path, per provider in order, rate
// limited and retried with backoff.
package notification
