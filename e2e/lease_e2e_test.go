//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Scenario 11: a worker's link to NATS is black-holed (the connection
// stays up, nothing arrives) for longer than AckWait while it holds
// requests in slow API calls; the server hands them to the other worker.
// When the link comes back the first worker must not finish them: its
// heartbeats were sent but never delivered, so it lost the lease, however
// connected it looked and however fresh its last heartbeat is once the
// link is back (issue 15 item 3).
func TestLeaseLostOnBlackhole(t *testing.T) {
	t.Parallel()
	r := newRand(t)
	s := newSystem(t, "11_lease_lost_on_blackhole", sysOptions{sim: []codeartssim.Option{
		codeartssim.WithLatency(4*ackWait, 0), // the calls outlast the blackhole: the link is back, and beating, when they end
	}})
	px := newProxy(t, s.nodes[0].url()[len("nats://"):])
	s.workerVia("w1", "nats://"+px.addr(), "--concurrency", "16", "--api-timeout", "30s")
	s.worker("w2", "--concurrency", "16", "--api-timeout", "30s")
	s.enqueue(mixedItems(r, 48, mix{}))
	if !waitFor(30*time.Second, func() bool { return s.sim.Stats().Calls >= 32 }) {
		t.Fatalf("the workers did not take 32 requests within 30s (API calls: %d)", s.sim.Stats().Calls)
	}
	hole := time.Now()
	px.blackhole()
	time.Sleep(ackWait * 5 / 2) // the fault: longer than AckWait, shorter than the client's stale-connection limit
	px.restore()
	s.finish(finishOptions{drainTimeout: 2 * time.Minute})

	late := 0
	for _, raw := range s.results {
		var res worker.Result
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
		fetched := res.At.Add(-time.Duration(res.DurationMS) * time.Millisecond)
		if strings.HasPrefix(res.Worker, "w1") && fetched.Before(hole) && res.At.After(hole.Add(ackWait)) {
			late++
			if late <= 3 {
				t.Errorf("w1 finished stream_seq %d (%s, delivery %d) at +%.1fs; it had fetched it before the link went dark, and the server had handed it on after AckWait of silence",
					res.StreamSeq, res.Outcome, res.Deliveries, res.At.Sub(hole).Seconds())
			}
		}
	}
	if late > 0 {
		t.Errorf("%d requests finished by a worker that had lost their lease", late)
	}
}
