// Package observe tests what the fleet shows to its operators: the hub's and the
// agent's Prometheus metrics, scraped from a running fleet over their secured
// endpoints, and the Events of every kind.
package observe
