package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// An outage long enough for every request held by the pool to fail a
// half-open probe, with every slot full: probes must go on (no fresh request
// can be fetched), and the pool must recover everything once the API is
// back, dead-lettering nothing.
func TestOutageWithEverySlotProbedRecovers(t *testing.T) {
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 3}})
	env.Sim.SetOutage(true)
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Concurrency = 4
	cfg.TriesPerDelivery = 2
	p := env.Pool(nil, cfg)
	env.Start(p)
	ids := publishN(env, 30, "o")
	testenv.Eventually(t, 10*time.Second, func() bool { return p.State().Regions[""].Breaker == retry.BreakerOpen }, "breaker opens")
	// The state under test: every held request (Concurrency + lookahead =
	// 5 slots, all full, so nothing fresh can be fetched) failed a probe.
	atOpen := env.Sim.Stats().Jobs
	probed := func() int {
		n := 0
		for id, j := range env.Sim.Stats().Jobs {
			if j.Calls > atOpen[id].Calls {
				n++
			}
		}
		return n
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return probed() >= 5 }, "every held request probed")
	env.Sim.SetOutage(false)
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= len(ids) }, "recovered %d", func() int { return rec.Count(worker.OutcomeRecovered) })
	require.Zero(t, env.DLQCount())
	requireAllRecovered(t, env, ids)
}
