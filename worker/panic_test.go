package worker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// panicPool builds a pool over env as worker run does, with api as its
// Recoverer.
func panicPool(env *testenv.Env, cfg worker.Config, api worker.Recoverer) *wire.Pool {
	return env.Pool(nil, cfg, wire.PoolOptions{ProcessScope: true, Recoverer: api})
}

// More panicking API calls than there are call slots: each panic gives its
// slot back, so the good requests are still recovered and the panicking
// ones end max_deliveries (a leaked slot per panic would wedge the pool
// while heartbeats keep every held message from redelivery).
func TestPanickingCallsReleaseTheirSlots(t *testing.T) {
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 3}})
	poison := []string{testenv.JobID("p"), testenv.JobID("p")}
	for _, id := range poison {
		env.Publish(id, id)
	}
	ids := publishN(env, 30, "g")
	api := wire.Recoverer(env.API)
	var panics atomic.Int64
	crashy := worker.RecoverFunc(func(ctx context.Context, r worker.Request) (string, error) {
		if testenv.HasPrefix(r.JobID, "p") {
			panics.Add(1)
			panic("boom")
		}
		return api.Recover(ctx, r)
	})
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Concurrency = 2 // 6 panics: three times the call slots
	env.Start(panicPool(env, cfg, crashy))

	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) == len(ids) },
		"every good request recovered despite the panics")
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeDeadLettered) == len(poison) }, "poison dead-lettered")
	require.GreaterOrEqual(t, panics.Load(), int64(2*len(poison)), "more panics than call slots")
	for _, dl := range env.DeadLetters() {
		require.Equal(t, worker.ReasonMaxDeliveries, dl.Reason)
	}
	requireAllRecovered(t, env, ids)
}

// A half-open probe whose call panics does not leave the probe out for
// ever: another probe goes, the breaker closes and everything is recovered.
func TestPanickingProbeDoesNotWedgeTheBreaker(t *testing.T) {
	const n = 40
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 5}})
	ids := publishN(env, n, "b")
	api := wire.Recoverer(env.API)
	const (
		down = iota
		panicOnce
		up
	)
	var mode atomic.Int32
	var panicked atomic.Bool
	rec := testenv.NewRecorder()
	var p *wire.Pool
	flaky := worker.RecoverFunc(func(ctx context.Context, r worker.Request) (string, error) {
		breaker := p.State().Regions[""].Breaker
		switch mode.Load() {
		case down:
			if breaker != retry.BreakerClosed {
				mode.Store(panicOnce)
			}
			return "", errors.New("connection reset by peer")
		case panicOnce:
			// Only the half-open probe goes while the breaker is not closed.
			if breaker == retry.BreakerHalfOpen && mode.CompareAndSwap(panicOnce, up) {
				panicked.Store(true)
				panic("probe boom")
			}
		}
		return api.Recover(ctx, r)
	})
	cfg := poolConfig(rec)
	cfg.Concurrency = 8
	p = panicPool(env, cfg, flaky)
	env.Start(p)

	testenv.Eventually(t, 30*time.Second, panicked.Load, "a probe panicked")
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) == n },
		"every request recovered after the panicking probe")
	require.Equal(t, retry.BreakerClosed, p.State().Regions[""].Breaker)
	require.Zero(t, env.DLQCount())
	requireAllRecovered(t, env, ids)
}
