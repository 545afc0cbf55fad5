package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
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
	testenv.Eventually(t, 10*time.Second, func() bool { return p.State().Breakers[""] == worker.BreakerOpen }, "breaker opens")
	outage := time.NewTimer(6 * time.Second) // the fault: long enough for every held request to fail a probe
	<-outage.C
	env.Sim.SetOutage(false)
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= len(ids) }, "recovered %d", rec.Count(worker.OutcomeRecovered))
	require.Zero(t, env.DLQCount())
	requireAllRecovered(t, env, ids)
}
