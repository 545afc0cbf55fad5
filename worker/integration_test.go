package worker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// fastBackoff keeps retries quick in tests; the behaviour is the same.
var fastBackoff = retry.Policy{
	Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, MaxElapsed: 10 * time.Second,
	NakInitial: 100 * time.Millisecond, NakMax: 500 * time.Millisecond, MaxRetryAfter: 1500 * time.Millisecond,
}

func poolConfig(rec *testenv.Recorder) worker.Config {
	return worker.Config{Concurrency: 16, Backoff: fastBackoff, Observer: rec, DrainTimeout: 10 * time.Second}
}

// Integration (a): a mixed workload ends with exactly the expected
// recovered and dead-lettered sets, and each dead letter is right.
func TestMixedWorkload(t *testing.T) {
	const n = 2000
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{
		codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
		codeartssim.WithErrorRate(0.05, 500),
		codeartssim.WithThrottle(0.01),
		codeartssim.WithBackendThrottle(0.01),
		codeartssim.WithRetryAfter(time.Second),
		codeartssim.WithSeed(7),
	}})
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		good, notFound, forbidden []string
		invalid                   []string
	)
	for i := range n {
		switch r := rng.IntN(100); {
		case r < 3:
			id := testenv.JobID("404")
			notFound = append(notFound, id)
			env.Publish(fmt.Sprintf(`{"job_id":%q,"reason":"outage"}`, id), id)
		case r < 4:
			id := testenv.JobID("403")
			forbidden = append(forbidden, id)
			env.Publish(id, id)
		case r < 5:
			body := fmt.Sprintf("not-a-job-%d", i)
			invalid = append(invalid, body)
			env.Publish(body, "")
		default:
			id := testenv.JobID("a")
			good = append(good, id)
			if i%2 == 0 {
				env.Publish(id, id)
			} else {
				env.Publish(fmt.Sprintf(`{"specversion":"1.0","id":"%d","source":"test","type":"recover","data":{"job_id":%q}}`, i, id), id)
			}
		}
	}
	rec := testenv.NewRecorder()
	p := env.Pool(nil, poolConfig(rec))
	run := env.Start(p)
	testenv.Eventually(t, 90*time.Second, func() bool { return rec.Terminal() >= n },
		"terminal outcomes %d of %d", rec.Terminal(), n)
	run.Stop(t)

	require.Zero(t, env.Pending(), "request stream must be empty")
	dls := env.DeadLetters()
	require.Equal(t, len(notFound)+len(forbidden)+len(invalid), len(dls))
	require.Equal(t, n, rec.Count(worker.OutcomeRecovered)+len(dls), "recovered + dead_lettered == N")

	byJob := map[string]worker.DeadLetter{}
	invalidBodies := map[string]bool{}
	for _, d := range dls {
		require.Equal(t, "test-worker", d.Worker)
		require.NotZero(t, d.Original.StreamSeq)
		require.Equal(t, env.Conn.Config().Subject, d.Original.Subject)
		require.False(t, d.FailedAt.IsZero())
		if d.Reason == worker.ReasonInvalidRequest {
			require.Empty(t, d.JobID)
			require.Zero(t, d.Attempts)
			require.Contains(t, d.ErrorMsg, "invalid request")
			invalidBodies[d.Original.Body] = true
			continue
		}
		require.Equal(t, worker.ReasonClientError, d.Reason)
		require.NotEmpty(t, d.RequestID, "the API's request id")
		require.Positive(t, d.Attempts)
		require.Equal(t, uint64(1), d.Deliveries)
		byJob[d.JobID] = d
	}
	for _, b := range invalid {
		require.True(t, invalidBodies[b], "invalid body %q dead-lettered", b)
	}
	for _, id := range notFound {
		d, ok := byJob[id]
		require.True(t, ok, "404 job %s dead-lettered", id)
		require.Equal(t, 404, d.StatusCode)
		require.Equal(t, codeartssim.StandardOutcome(404).Code, d.ErrorCode)
		require.NotEmpty(t, d.ErrorMsg)
		require.Contains(t, d.Original.Body, id)
	}
	for _, id := range forbidden {
		require.Equal(t, 403, byJob[id].StatusCode, "403 job %s", id)
	}
	stats := env.Sim.Stats()
	for _, id := range good {
		require.GreaterOrEqual(t, env.Sim.Recovered(id), 1, "job %s recovered", id)
		_, dead := byJob[id]
		require.False(t, dead)
	}
	for _, id := range append(notFound, forbidden...) {
		// Only a throttle or a 5xx before the 4xx answer causes a second
		// call: the 4xx itself is never retried.
		require.Equal(t, int64(byJob[id].Attempts), stats.Jobs[id].Calls, "job %s calls", id)
		require.Zero(t, stats.Jobs[id].Recovered)
	}
	require.Equal(t, int64(len(good)+len(notFound)+len(forbidden)), int64(len(stats.Jobs)),
		"invalid requests never reach the API")
	// Exactly one result event per request, agreeing with the outcomes.
	results := env.Results()
	require.Len(t, results, n)
	seen := map[uint64]bool{}
	byOutcome := map[string]int{}
	for _, r := range results {
		require.False(t, seen[r.StreamSeq], "one result per request (seq %d)", r.StreamSeq)
		seen[r.StreamSeq] = true
		byOutcome[r.Outcome]++
		if r.Outcome == worker.OutcomeRecovered {
			require.Equal(t, 200, r.Status)
			require.NotEmpty(t, r.RequestID)
		}
	}
	require.Equal(t, len(good), byOutcome[worker.OutcomeRecovered])
	require.Equal(t, len(dls), byOutcome[worker.OutcomeDeadLettered])
	require.Positive(t, rec.Retries("transient"))
	require.Positive(t, rec.Retries("throttled"))
	t.Logf("recovered=%d dead_lettered=%d api_calls=%d by_status=%v retries transient=%d throttled=%d",
		rec.Count(worker.OutcomeRecovered), len(dls), stats.Calls, stats.ByStatus, rec.Retries("transient"), rec.Retries("throttled"))
}

// Integration (b): transient failures are retried until success.
func TestRetryThenSuccess(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := testenv.JobID("b")
	env.Sim.Script(id, 500, 503, 502)
	env.Publish(id, id)
	rec := testenv.NewRecorder()
	env.Start(env.Pool(nil, poolConfig(rec)))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) == 1 }, "recovered")
	require.Equal(t, 1, env.Sim.Recovered(id))
	require.Equal(t, int64(4), env.Sim.Stats().Jobs[id].Calls)
	require.Zero(t, env.DLQCount())
	// 3 transient failures with 3 tries per delivery: one redelivery.
	require.Equal(t, 1, rec.Retries("redelivery"))
}

// Integration (c): the attempt budget spans deliveries; the last delivery
// dead-letters the request itself.
func TestAttemptBudgetExhausted(t *testing.T) {
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 2}})
	id := testenv.JobID("c")
	env.Sim.Script(id, 500, 500, 500, 500, 500, 500, 500, 500)
	env.Publish(id, id)
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.TriesPerDelivery = 2
	env.Start(env.Pool(nil, cfg))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeDeadLettered) == 1 }, "dead-lettered")
	dls := env.DeadLetters()
	require.Len(t, dls, 1)
	d := dls[0]
	require.Equal(t, worker.ReasonRetriesExhausted, d.Reason)
	require.Equal(t, id, d.JobID)
	require.Equal(t, 500, d.StatusCode)
	require.Equal(t, 4, d.Attempts)
	require.Equal(t, uint64(2), d.Deliveries)
	require.Equal(t, int64(4), env.Sim.Stats().Jobs[id].Calls)
	require.Zero(t, env.Pending())
}

// Integration (d): shutdown mid-flight loses nothing; a second pool
// finishes the rest.
func TestShutdownMidFlight(t *testing.T) {
	const n = 300
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithLatency(50*time.Millisecond, 20*time.Millisecond)}})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testenv.JobID("d")
		env.Publish(ids[i], ids[i])
	}
	rec1 := testenv.NewRecorder()
	run1 := env.Start(env.Pool(nil, poolConfig(rec1)))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec1.Count(worker.OutcomeRecovered) >= 50 }, "first pool progresses")
	run1.Stop(t)
	done1 := rec1.Terminal()
	require.Less(t, done1, n, "stopped before the end")

	rec2 := testenv.NewRecorder()
	env.Start(env.Pool(env.Connect(), poolConfig(rec2)))
	testenv.Eventually(t, 60*time.Second, func() bool {
		return rec1.Count(worker.OutcomeRecovered)+rec2.Count(worker.OutcomeRecovered) == n
	}, "all recovered, %d left in the stream", env.Pending())
	require.Zero(t, env.Pending())
	for _, id := range ids {
		require.GreaterOrEqual(t, env.Sim.Recovered(id), 1, "job %s", id)
	}
	require.Zero(t, env.DLQCount())
}

// Integration (e): a worker whose connection dies without acking: its
// messages are redelivered and finished by another worker.
func TestWorkerDiesWithoutAck(t *testing.T) {
	const n = 40
	env := testenv.New(t, testenv.Options{
		Queue: queue.Config{AckWait: 2 * time.Second},
		Sim:   []codeartssim.Option{codeartssim.WithLatency(300*time.Millisecond, 0)},
	})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testenv.JobID("e")
		env.Publish(ids[i], ids[i])
	}
	conn1 := env.Connect()
	rec1 := testenv.NewRecorder()
	p1 := env.Pool(conn1, poolConfig(rec1))
	run1 := env.Start(p1)
	testenv.Eventually(t, 10*time.Second, func() bool { return p1.InFlight() > 0 }, "first worker holds messages")
	conn1.NC.Close() // the process "dies": no ack, no nak reaches the server
	run1.Stop(t)

	rec2 := testenv.NewRecorder()
	env.Start(env.Pool(nil, poolConfig(rec2)))
	testenv.Eventually(t, 60*time.Second, func() bool { return env.Pending() == 0 }, "stream drained, %d left", env.Pending)
	for _, id := range ids {
		require.GreaterOrEqual(t, env.Sim.Recovered(id), 1, "job %s", id)
	}
	// The dead worker held requests and finished none of them: its calls
	// came back to no connection (the ack, the outcome claim or the
	// hand-back failed, or the lease ran out while it waited for NATS).
	require.Positive(t, rec1.Count(worker.OutcomeAckFailed)+rec1.Count(worker.OutcomeHandedBack)+rec1.Count(worker.OutcomeLeaseLost), "the dead worker held nothing")
	require.Zero(t, env.DLQCount())
}

// Integration (f): a call slower than AckWait is not processed twice: the
// heartbeat keeps the message with its worker.
func TestSlowCallNotRedelivered(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Queue: queue.Config{AckWait: time.Second},
		Sim:   []codeartssim.Option{codeartssim.WithLatency(3500*time.Millisecond, 0)},
	})
	id := testenv.JobID("f")
	env.Publish(id, id)
	rec1, rec2 := testenv.NewRecorder(), testenv.NewRecorder()
	env.Start(env.Pool(nil, poolConfig(rec1)))
	env.Start(env.Pool(env.Connect(), poolConfig(rec2)))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec1.Terminal()+rec2.Terminal() == 1 }, "recovered")
	require.Equal(t, int64(1), env.Sim.Stats().Jobs[id].Calls, "one API call: never redelivered while in progress")
	require.Equal(t, 1, rec1.Count(worker.OutcomeRecovered)+rec2.Count(worker.OutcomeRecovered))
}

// crashAfterPublish stores the dead letter, then fails as a crash between
// dead-lettering and acking would.
type crashAfterPublish struct {
	next    worker.DeadLetterer
	crashes int
}

func (c *crashAfterPublish) DeadLetter(ctx context.Context, msgID string, record []byte) error {
	if err := c.next.DeadLetter(ctx, msgID, record); err != nil {
		return err
	}
	if c.crashes > 0 {
		c.crashes--
		return errors.New("crash before ack")
	}
	return nil
}

// Integration (g): dead letter stored, then a crash before the ack: after
// redelivery there is still exactly one dead letter.
func TestDeadLetterThenCrashMakesOne(t *testing.T) {
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}})
	id := testenv.JobID("404")
	env.Publish(id, id)
	cons, err := env.Conn.Consumer(context.Background())
	require.NoError(t, err)
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.MaxDeliver, cfg.AckWait = env.Conn.Config().MaxDeliver, env.Conn.Config().AckWait
	cfg.Decode.ValidRegion = env.API.AllowedRegion
	dl := &crashAfterPublish{next: env.Conn, crashes: 2}
	p, err := worker.New(cfg, testenvSource(cons), testenvRecoverer(env), dl)
	require.NoError(t, err)
	env.Start(p)
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeDeadLettered) == 1 }, "dead-lettered")
	require.Equal(t, 2, rec.Count(worker.OutcomeHandedBack))
	dls := env.DeadLetters()
	require.Len(t, dls, 1, "exactly one dead letter")
	require.Equal(t, id, dls[0].JobID)
	// The stored record is the first one; the repeats were dropped as
	// duplicates of its Nats-Msg-Id.
	require.Equal(t, uint64(1), dls[0].Deliveries)
	require.Zero(t, env.Pending())
}
