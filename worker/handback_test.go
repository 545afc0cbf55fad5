package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// A rolling restart during an API outage: six graceful stops while every
// request is held at the open breaker, each handing its requests back. A
// hand-back costs a request only the tries it really made, never a
// delivery, so with a budget of three deliveries nothing is dead-lettered;
// every request is recovered once the API is back, exactly once, under its
// first message's stream sequence.
func TestRestartsDuringOutageDeadLetterNothing(t *testing.T) {
	const (
		n        = 100
		restarts = 6
	)
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 3}})
	env.Sim.SetOutage(true)
	ids := publishN(env, n, "h")
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.TriesPerDelivery = 2

	for i := range restarts {
		p := env.Pool(nil, cfg)
		run := env.Start(p)
		testenv.Eventually(t, 20*time.Second, func() bool {
			return p.State().Regions[""].Breaker == retry.BreakerOpen && p.InFlight() > 0
		}, "restart %d: breaker open with requests held", i)
		run.Stop(t) // SIGTERM: hand everything back
	}
	require.Zero(t, env.DLQCount(), "nothing dead-lettered during the outage")
	require.Positive(t, rec.Count(worker.OutcomeHandedBack), "requests were handed back")

	env.Sim.SetOutage(false)
	p := env.Pool(nil, cfg)
	env.Start(p)
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n }, "all recovered after the outage")
	require.Zero(t, env.DLQCount(), "a rolling restart during an outage dead-letters nothing")
	requireAllRecovered(t, env, ids)

	// One result per request, named by the sequence it was first stored at.
	testenv.Eventually(t, 10*time.Second, func() bool { return len(env.Results()) >= n }, "result events stored")
	seen := map[uint64]bool{}
	for _, r := range env.Results() {
		require.Equal(t, worker.OutcomeRecovered, r.Outcome)
		require.False(t, seen[r.StreamSeq], "one result for stream_seq %d", r.StreamSeq)
		seen[r.StreamSeq] = true
		require.LessOrEqual(t, r.StreamSeq, uint64(n), "the first message's sequence, not a requeued copy's")
	}
	require.Len(t, seen, n)
	require.Zero(t, env.Pending(), "no copy left behind")
}

// The tries a request spent travel with it when it is requeued: a request
// that keeps failing ends retries_exhausted with its whole budget counted,
// however many hand-backs happened in between.
func TestRequeuedRequestKeepsItsSpentTries(t *testing.T) {
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 2}})
	id := testenv.JobID("k")
	env.Sim.Script(id, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	env.Publish(id, id)
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.TriesPerDelivery = 3

	// First run: stop while the request waits between tries.
	p := env.Pool(nil, cfg)
	run := env.Start(p)
	testenv.Eventually(t, 20*time.Second, func() bool { return env.Sim.Stats().Calls >= 1 }, "a first try")
	run.Stop(t)
	tried := env.Sim.Stats().Calls

	p = env.Pool(nil, cfg)
	env.Start(p)
	testenv.Eventually(t, 30*time.Second, func() bool { return env.DLQCount() == 1 }, "dead-lettered")
	dls := env.DeadLetters()
	require.Len(t, dls, 1)
	require.Equal(t, worker.ReasonRetriesExhausted, dls[0].Reason)
	require.Equal(t, int(env.Sim.Stats().Calls), dls[0].Attempts, "every try counted, none twice: %+v", dls[0])
	require.Equal(t, int64(6), env.Sim.Stats().Calls, "the budget: 2 deliveries x 3 tries, hand-back included")
	require.Positive(t, tried)
	require.Equal(t, uint64(1), dls[0].Original.StreamSeq, "named by its first message")
	require.Equal(t, id, dls[0].Original.Body)
	for k := range dls[0].Original.Headers {
		require.NotContains(t, k, "Codearts-Recover", "the worker's own headers are not kept: a replay starts afresh")
	}
}

// A 5xx that comes after a long hold (here a credential pause longer than
// the backoff's elapsed-time budget) is still retried within the delivery:
// the hold is not a try. With a budget of one delivery, counting the hold
// would dead-letter the request at its second failure.
func TestFailureAfterLongHoldIsRetried(t *testing.T) {
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 1}})
	a, b := testenv.JobID("a"), testenv.JobID("b")
	env.Publish(b, b)
	env.Publish(a, a)
	api := wire.Recoverer(env.API)
	bFailed := make(chan struct{})
	var bCalls, aCalls atomic.Int32
	rec := worker.RecoverFunc(func(ctx context.Context, r worker.Request) (string, error) {
		switch r.JobID {
		case b:
			switch bCalls.Add(1) {
			case 1:
				close(bFailed)
				return "", &codearts.APIError{StatusCode: 500, ErrorCode: "CB.00060101"}
			case 2:
				return "", &codearts.APIError{StatusCode: 500, ErrorCode: "CB.00060101"}
			}
		case a:
			if aCalls.Add(1) == 1 {
				<-bFailed // the pause begins while b waits between its tries
				return "", &codearts.APIError{StatusCode: 401, ErrorCode: "APIG.0301"}
			}
		}
		return api.Recover(ctx, r)
	})
	obs := testenv.NewRecorder()
	cfg := poolConfig(obs)
	cfg.Concurrency = 2
	cfg.TriesPerDelivery = 3
	cfg.Backoff.Initial, cfg.Backoff.Max = 200*time.Millisecond, 200*time.Millisecond
	cfg.Backoff.MaxElapsed = time.Second
	cfg.Gate = worker.GateConfig{PauseProbe: 2 * time.Second}
	p := env.Pool(nil, cfg, wire.PoolOptions{ProcessScope: true, Recoverer: rec})
	env.Start(p)

	testenv.Eventually(t, 30*time.Second, func() bool { return obs.Terminal() == 2 }, "both requests finished")
	for _, dl := range env.DeadLetters() {
		t.Logf("dead letter: %s %s attempts=%d %s", dl.JobID[:1], dl.Reason, dl.Attempts, dl.ErrorMsg)
	}
	require.Zero(t, env.DLQCount(), "a failure after a 2s pause, with a 1s elapsed budget, is retried")
	require.Equal(t, 2, obs.Count(worker.OutcomeRecovered))
	require.Equal(t, int32(3), bCalls.Load(), "b: two failures, then success")
	require.Equal(t, 1, env.Sim.Recovered(b))
}

// A shutdown is bounded by the drain timeout whatever the source does: a
// pull that waits only for its context (as a pull on a lost connection
// may) does not keep the drain from starting. The request still in flight
// when the timeout passes is handed back, not acked. Before, the drain
// timer started only once every pull had returned, so this Run never did.
func TestShutdownBoundedByDrainTimeout(t *testing.T) {
	src := &memSource{n: 1, done: make(chan struct{}), body: []byte(benchJobID)}
	calling := make(chan struct{})
	rec := worker.RecoverFunc(func(ctx context.Context, _ worker.Request) (string, error) {
		close(calling)
		<-ctx.Done() // an API call that outlives the drain
		return "", ctx.Err()
	})
	p, err := worker.New(worker.Config{Concurrency: 2, DrainTimeout: 200 * time.Millisecond, Results: nopSink{}, Name: "drain"},
		src, rec, nopSink{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	testenv.Eventually(t, 30*time.Second, func() bool {
		select {
		case <-calling:
			return true
		default:
			return false
		}
	}, "the request reached the API")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not return after shutdown: a pull kept the drain from starting")
	}
	require.Equal(t, int64(1), src.naks.Load(), "the request in flight was handed back")
	require.Zero(t, src.acked.Load(), "nothing acked")
}
