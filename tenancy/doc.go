// Package tenancy holds Flotilla's tenancy rules, with no side effects, so that the
// hub and the agent enforce the same ones: which Tenant owns a hub namespace, what a
// deployment in it may name and reach (Decide), which clusters a tenant reaches
// (Reaches), whether a SOPS key on a spoke serves a tenant (KeyServes), and the spoke
// objects that set a tenant up on a cluster (SetupObjects).
package tenancy
