// Package ops is what an operator sees of a running worker besides its logs:
// the HTTP endpoints /healthz, /readyz and /metrics, the Prometheus metrics
// the pool feeds through worker.Observer, and the poller that reads the
// consumer's lag.
//
// Invariants it owns:
//   - /healthz depends on nothing but the process serving HTTP: a NATS or API
//     outage makes the worker not ready, never not alive, so it causes no
//     restart storm.
//   - /readyz is the conjunction of named checks; each is a cheap, local
//     func() error (no network call on the probe path), and a failing one
//     answers 503 with its name and reason.
//   - Metric labels are bounded: outcome, reason, cause, class and status
//     come from fixed sets (anything else is reported as "other"); a job id,
//     request id or error message is never a label.
//   - Metrics live in their own registry (never the global one), so tests and
//     the demo can build as many as they like.
package ops
