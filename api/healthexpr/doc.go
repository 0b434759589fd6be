// Package healthexpr compiles and evaluates the CEL health checks of a deployment
// (spec.healthCheckExprs): the hub compiles them to refuse a bad expression before
// anything is assigned, and the agent evaluates them on each spoke.
package healthexpr
