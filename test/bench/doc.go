// Package bench measures the agent's footprint and apply speed on real API
// servers; `make bench` runs it, `make test` does not (it holds only benchmarks).
package bench
