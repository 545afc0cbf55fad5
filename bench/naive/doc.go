// Package naive is the "obvious" pool the scenario benchmark compares the
// worker with: a nats.go pull subscription, a goroutine per message under a
// semaphore, cenkalti/backoff around the same SDK call with the SDK's
// default HTTP transport, and the same terminal records (dead letter, result
// event, synchronous ack), so that both do the same work per request and the
// same oracle checks both. It ignores Retry-After, has no rate limiter, no
// breaker and no heartbeat, on purpose: that is the baseline.
package naive
