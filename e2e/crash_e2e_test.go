//go:build e2e

package e2e

import (
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// mixedSim is the API of the mixed runs: a little latency, 3% transient
// 5xx, and answers by job id prefix (400/404: client errors).
//
// There are no "always 503" jobs: with the circuit breaker, once they are
// the only traffic left every call fails, the breaker opens and holds them
// as it would in an outage, so they never reach retries_exhausted.
func mixedSim(latency time.Duration) []codeartssim.Option {
	return []codeartssim.Option{
		codeartssim.WithLatency(latency, latency),
		codeartssim.WithErrorRate(0.03, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable),
		codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
	}
}

// Scenario 1: the worker is SIGKILLed five times at random points of a
// 5,000-request mixed run and restarted at once each time. Nothing may be
// lost or finish twice; a request that a crash cost its last delivery may
// end max_deliveries (the SPEC's answer to "it crashed the worker each
// time").
func TestWorkerSIGKILL(t *testing.T) {
	r := newRand(t)
	const n = 5000
	s := newSystem(t, "1_worker_sigkill_x5", sysOptions{sim: mixedSim(10 * time.Millisecond)})
	w := s.worker("w1", "--concurrency", "16")
	s.enqueue(mixedItems(r, n, mix{clientError: 0.04, invalid: 0.02}))

	points := make([]int, 5)
	for i := range points {
		points[i] = n/20 + r.IntN(n*80/100) // between 5% and 85% done
	}
	slices.Sort(points)
	for _, k := range points {
		s.waitTerminals(k, 2*time.Minute)
		w.kill()
		w.start()
	}
	s.finish(finishOptions{drainTimeout: 2 * time.Minute, oracle: oracleOptions{allowMaxDeliveries: true}})
}

// Scenario 2: two workers; one is SIGSTOPped for 1.5 × AckWait while it
// holds requests, so the server hands them to the other, then SIGCONT: it
// wakes with answers for requests that are no longer its own. No request
// may get two terminal records (lease safety).
func TestWorkerSIGSTOP(t *testing.T) {
	r := newRand(t)
	const n = 2000
	s := newSystem(t, "2_worker_sigstop", sysOptions{sim: []codeartssim.Option{
		codeartssim.WithLatency(150*time.Millisecond, 100*time.Millisecond),
		codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
	}})
	a := s.worker("w1", "--concurrency", "16")
	s.worker("w2", "--concurrency", "16")
	s.enqueue(mixedItems(r, n, mix{clientError: 0.1, invalid: 0.02}))

	s.waitTerminals(n/4, 2*time.Minute)
	a.signal(syscall.SIGSTOP)
	time.Sleep(ackWait * 3 / 2) // the fault: stopped for 1.5 × AckWait
	a.signal(syscall.SIGCONT)
	s.finish(finishOptions{drainTimeout: 2 * time.Minute})
}
