package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// A 200 whose body says the recover failed ({"status":"fail"}, or an
// error_code) is not a recovery: every job the worker reports recovered is
// one the simulator really recovered, and nothing is lost.
func TestFailingSuccessAnswersAreNotRecovered(t *testing.T) {
	const n = 2000
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{
		codeartssim.WithFailStatus(0.05),
		codeartssim.WithErrorOn200(0.05),
		codeartssim.WithSeed(12),
	}})
	ids := publishN(env, n, "f")
	rec := testenv.NewRecorder()
	p := env.Pool(nil, poolConfig(rec))
	env.Start(p)

	testenv.Eventually(t, 120*time.Second, func() bool { return rec.Terminal() >= n }, "every request terminal")

	faults := env.Sim.Stats().Faults
	require.Positive(t, faults[codeartssim.FaultFail200], "the simulator answered status fail")
	require.Positive(t, faults[codeartssim.FaultErrorOn200], "the simulator answered an error code on 200")

	falselyRecovered := 0
	for _, o := range rec.Outcomes() {
		if o.Kind == worker.OutcomeRecovered && env.Sim.Recovered(o.JobID) == 0 {
			falselyRecovered++
		}
	}
	results := env.Results()
	for _, r := range results {
		if r.Outcome == worker.OutcomeRecovered && env.Sim.Recovered(r.JobID) == 0 {
			falselyRecovered++
		}
	}
	require.Zero(t, falselyRecovered, "jobs reported recovered that the API did not recover")
	require.Zero(t, env.DLQCount(), "a failing 200 is transient: retried, never dead-lettered at once")
	require.Equal(t, n, rec.Count(worker.OutcomeRecovered), "recovered + dead-lettered = N")
	requireAllRecovered(t, env, ids)
	require.Positive(t, rec.Retries("transient"), "the failing answers were retried")
	t.Logf("fail_200=%d error_on_200=%d falsely recovered=%d dead-lettered=%d",
		faults[codeartssim.FaultFail200], faults[codeartssim.FaultErrorOn200], falselyRecovered, env.DLQCount())
}

// A window of 404 APIG.0101 (the API is not published at this endpoint: a
// wrong endpoint or region, a gateway route change) is a configuration
// error, the same for every job: the pool pauses fleet-wide, is not ready,
// dead-letters nothing, and recovers the whole backlog once the route is
// back.
func TestRoute404WindowPausesWithoutDeadLetters(t *testing.T) {
	const n = 3000
	window := 10 * time.Second
	env := testenv.New(t, testenv.Options{})
	ids := publishN(env, n, "r")
	start := time.Now()
	env.Sim.Configure(codeartssim.WithRoute404Window(start, start.Add(window)))
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Gate = worker.GateConfig{PauseProbe: 500 * time.Millisecond, PauseMaxProbe: 2 * time.Second}
	p := env.Pool(nil, cfg)
	env.Start(p)

	testenv.Eventually(t, 10*time.Second, func() bool { return p.State().Paused }, "paused on APIG.0101")
	require.Contains(t, p.State().PauseReason, "APIG.0101")
	testenv.Eventually(t, 10*time.Second, func() bool {
		info, err := env.Conn.JS.Consumer(context.Background(), env.Queue.WithDefaults().Stream, env.Queue.WithDefaults().Consumer)
		return err == nil && info.CachedInfo().Paused
	}, "consumer paused fleet-wide")
	require.True(t, time.Now().Before(start.Add(window)), "the pause came within the window (machine too slow to judge otherwise)")
	require.Zero(t, env.DLQCount(), "nothing dead-lettered during the window")
	require.Greater(t, env.Pending(), uint64(n/2), "the backlog waits")
	callsInWindow := env.Sim.Stats().Faults[codeartssim.FaultRoute404]

	testenv.Eventually(t, 120*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n },
		"the whole backlog recovered after the window")
	require.Zero(t, env.DLQCount(), "a wrong route dead-letters nothing")
	require.Zero(t, rec.Count(worker.OutcomeDeadLettered))
	require.False(t, p.State().Paused)
	requireAllRecovered(t, env, ids)
	route404 := env.Sim.Stats().Faults[codeartssim.FaultRoute404]
	// The calls in flight when the first 404 came, then rare probes: not
	// one call per request of the backlog.
	require.Less(t, route404, int64(n/10), "404 answers during the window")
	t.Logf("404 APIG.0101 answers: %d (%d seen when paused)", route404, callsInWindow)
}
