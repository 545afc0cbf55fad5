//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// Scenario 6: the API misbehaves; every request must still be recovered,
// none dead-lettered.
func TestAPIFaults(t *testing.T) {
	t.Parallel()

	// An outage (every call 503) longer than a request's whole retry budget:
	// with --max-deliver 3 --tries-per-delivery 2 a request gives up after
	// about 0.1s + 5s + 0.2s + 10s + 0.2s of failures. The SPEC: "an API
	// outage of any length dead-letters nothing" (circuit breaker).
	t.Run("outage_longer_than_retry_budget", func(t *testing.T) {
		t.Parallel()
		r := newRand(t)
		s := newSystem(t, "6a_api_outage_25s", sysOptions{sim: []codeartssim.Option{codeartssim.WithOutage(true)}})
		s.worker("w1", "--concurrency", "32", "--max-deliver", "3", "--tries-per-delivery", "2",
			"--backoff-initial", "100ms", "--backoff-max", "500ms")
		s.enqueue(mixedItems(r, 300, mix{}))
		time.Sleep(25 * time.Second) // the fault: the outage lasts 25s
		s.sim.SetOutage(false)
		s.finish(finishOptions{drainTimeout: 3 * time.Minute})
	})

	// Every answer takes 1.5 × AckWait: only the InProgress heartbeat keeps
	// the server from handing the requests to someone else.
	t.Run("slow_api", func(t *testing.T) {
		t.Parallel()
		r := newRand(t)
		s := newSystem(t, "6b_api_latency_1.5x_ackwait", sysOptions{sim: []codeartssim.Option{
			codeartssim.WithLatency(ackWait*3/2, 0),
		}})
		s.worker("w1", "--concurrency", "64")
		s.enqueue(mixedItems(r, 200, mix{}))
		s.finish(finishOptions{drainTimeout: 2 * time.Minute})
	})

	// A third of the calls apply the recover and answer only after the
	// client's timeout: the worker sees a timeout for a call that worked,
	// retries, and must end recovered (the duplicate successes are the
	// at-least-once price, reported).
	t.Run("apply_then_timeout", func(t *testing.T) {
		t.Parallel()
		r := newRand(t)
		s := newSystem(t, "6c_api_apply_then_timeout", sysOptions{sim: []codeartssim.Option{
			codeartssim.WithApplyThenHang(0.3, 3*time.Second),
		}})
		s.worker("w1", "--concurrency", "32", "--api-timeout", "1s")
		s.enqueue(mixedItems(r, 300, mix{}))
		f := s.finish(finishOptions{drainTimeout: 2 * time.Minute})
		if f.dupAPISuccesses == 0 {
			t.Errorf("no duplicate API successes: the apply-then-timeout fault did not happen")
		}
	})
}
