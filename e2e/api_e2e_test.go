//go:build e2e

package e2e

import (
	"net/http"
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

	// Every answer the real API gives, mixed: 200s saying "fail" or
	// carrying an error code, proxies' HTML pages (502 and 200), error
	// bodies as JSON strings, 5xx with the gateway's codes, job-level
	// 400/404/422, one job answering 401 APIG.0301 once (a credential pause)
	// and a window of 404 APIG.0101 (wrong route: configuration) soon after
	// the enqueue. Only real client errors are dead-lettered; every job
	// reported recovered is one the simulator recovered.
	t.Run("real_answers", func(t *testing.T) {
		t.Parallel()
		r := newRand(t)
		s := newSystem(t, "6d_api_real_answers", sysOptions{sim: []codeartssim.Option{
			codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
			codeartssim.WithFailStatus(0.03),
			codeartssim.WithErrorOn200(0.03),
			codeartssim.WithHTMLErrors(0.02),
			codeartssim.WithHTMLSuccess(0.02),
			codeartssim.WithStringBodies(0.3),
			codeartssim.WithErrorRate(0.03, 500, 502, 503, 504),
			codeartssim.WithBackendThrottle(0.01),
		}})
		s.worker("w1", "--concurrency", "32", "--rate-limit", "300")
		s.worker("w2", "--concurrency", "32", "--rate-limit", "300")
		items := mixedItems(r, 2000, mix{clientError: 0.05, invalid: 0.02})
		for _, it := range items {
			if it.want == outcomeRecovered {
				s.sim.Script(it.jobID, http.StatusUnauthorized)
				break
			}
		}
		s.enqueue(items)
		// The window starts a second after the enqueue and lasts 3s: calls
		// or, while the 401's pause holds, its probes (every 2s) meet it.
		start := time.Now()
		s.sim.Configure(codeartssim.WithRoute404Window(start.Add(time.Second), start.Add(4*time.Second)))
		f := s.finish(finishOptions{drainTimeout: 3 * time.Minute})
		stats := s.sim.Stats()
		for _, fault := range []codeartssim.Fault{codeartssim.FaultFail200, codeartssim.FaultErrorOn200, codeartssim.FaultHTML502,
			codeartssim.FaultHTML200, codeartssim.FaultStringBody, codeartssim.FaultRoute404} {
			if stats.Faults[fault] == 0 {
				t.Errorf("the simulator never answered %s: the scenario did not test it", fault)
			}
		}
		if stats.ByStatus[http.StatusUnauthorized] == 0 {
			t.Errorf("the simulator never answered 401: the scenario did not test it")
		}
		if f.falselyRecovered != 0 {
			t.Errorf("%d requests reported recovered that the API did not recover", f.falselyRecovered)
		}
	})

	// A rolling update during an outage: two workers are restarted six
	// times in turn (SIGTERM, a new process) during a 40s outage. Each
	// shutdown hands back what it holds; a hand-back costs a request only
	// the tries it made, so nothing is dead-lettered.
	t.Run("rolling_restart_during_outage", func(t *testing.T) {
		t.Parallel()
		r := newRand(t)
		s := newSystem(t, "6e_rolling_restart_during_40s_outage", sysOptions{sim: []codeartssim.Option{codeartssim.WithOutage(true)}})
		flags := []string{"--concurrency", "32", "--max-deliver", "3", "--tries-per-delivery", "2"}
		ws := []*workerProc{s.worker("w1", flags...), s.worker("w2", flags...)}
		s.enqueue(mixedItems(r, 500, mix{}))
		outage := time.Now()
		for i := range 6 {
			time.Sleep(5 * time.Second) // the fault: a restart every 5s of the outage
			w := ws[i%2]
			w.sampleRSS()
			if err := w.p.stop(20 * time.Second); err != nil {
				t.Errorf("restart %d: SIGTERM did not end %s cleanly: %v", i, w.name, err)
			}
			w.start()
		}
		time.Sleep(time.Until(outage.Add(40 * time.Second)))
		s.sim.SetOutage(false)
		f := s.finish(finishOptions{drainTimeout: 3 * time.Minute})
		if n := len(f.deadLettered); n != 0 {
			t.Errorf("a rolling restart during an outage dead-lettered requests: %v", f.deadLettered)
		}
	})
}
