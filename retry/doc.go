// Package retry is the only place that decides what an error means and how long to wait.
//
// It owns three things, and imports none of the project's other packages:
//
//   - Classification: Classify (or a Classifier with operator rules from --classify) maps an
//     error to a Class through one table keyed by HTTP status and the body's error_code.
//     API errors are recognised through the Answer interface, declared here and implemented
//     by codearts.*APIError. The worker acts on the Class; nothing else inspects errors.
//   - Waiting: a Policy makes one fresh exponential backoff per delivery (New), prefers the
//     API's Retry-After (Next), and schedules redeliveries when a delivery's in-process
//     budget is spent (NakDelay). ParseRetryAfter reads the header.
//   - Pacing: a Limiter, one per process, paces calls to the API and adapts to throttles
//     (multiplicative decrease, additive increase; a pool-wide Retry-After pause only when
//     the throttling persists or the hint is long, otherwise only the throttled call waits
//     its Retry-After). A TokenSource plugs in the fleet-wide quota.
//
// Invariants:
//
//   - An error this package does not recognise is Transient, never ClientError: nothing is
//     dead-lettered over an error nobody understood. Only our own context.Canceled is
//     Canceled.
//   - Error codes classify error answers only: under the defaults, a 2xx is Success
//     whatever code it carries. Error-code rules beat status rules; operator rules beat the
//     defaults.
//   - A throttle never grows a request's backoff (Next does not advance it on Retry-After)
//     and lowers the process rate at most once per Cooldown.
//   - Every wait is bounded: backoffs stop after Policy.MaxElapsed (never backoff v4's silent
//     15-minute default), Retry-After is capped by Policy.MaxRetryAfter and
//     LimiterConfig.MaxPause, nak delays by Policy.NakMax.
//   - A backoff belongs to one delivery and one goroutine; Policy, Classifier and Limiter
//     are safe to share. Nothing here starts a goroutine.
package retry
