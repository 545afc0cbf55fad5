package worker_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

func publishN(env *testenv.Env, n int, prefix string) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testenv.JobID(prefix)
		env.Publish(ids[i], ids[i])
	}
	return ids
}

func requireAllRecovered(t *testing.T, env *testenv.Env, ids []string) {
	t.Helper()
	for _, id := range ids {
		require.GreaterOrEqual(t, env.Sim.Recovered(id), 1, "job %s", id)
	}
}

// An API outage far longer than the whole retry budget dead-letters
// nothing: the breaker opens, calls during the outage stay few, and
// everything is recovered once the API is back.
func TestOutageLongerThanBudget(t *testing.T) {
	const n = 200
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 2}})
	env.Sim.SetOutage(true)
	ids := publishN(env, n, "o")
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.TriesPerDelivery = 2 // budget: 4 calls, well under a second with fastBackoff
	p := env.Pool(nil, cfg)
	env.Start(p)

	testenv.Eventually(t, 10*time.Second, func() bool { return p.State().Regions[""].Breaker == retry.BreakerOpen }, "breaker opens")
	before := env.Sim.Stats().Calls
	// Hold the outage for several times the retry budget.
	outage := time.NewTimer(4 * time.Second)
	<-outage.C
	during := env.Sim.Stats().Calls - before
	env.Sim.SetOutage(false)

	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n }, "recovered %d", func() int { return rec.Count(worker.OutcomeRecovered) })
	require.Zero(t, env.DLQCount(), "an outage dead-letters nothing")
	require.Equal(t, retry.BreakerClosed, p.State().Regions[""].Breaker)
	requireAllRecovered(t, env, ids)
	// Half-open probes only: one call per BreakerMaxOpen (500ms), plus
	// one fresh request per probe period.
	require.LessOrEqual(t, during, int64(20), "calls during 4s of outage")
	t.Logf("api calls during a 4s outage with the breaker open: %d", during)
}

// A wrong secret key (401) pauses consumption fleet-wide and dead-letters
// nothing; fixing the key resumes by itself.
func TestUnauthorizedPausesThenResumes(t *testing.T) {
	const n = 500
	env := testenv.New(t, testenv.Options{})
	env.Sim.SetCredentials(testenv.AK, "rotated-secret")
	ids := publishN(env, n, "u")
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Gate = worker.GateConfig{PauseProbe: 50 * time.Millisecond, PauseMaxProbe: 200 * time.Millisecond}
	p := env.Pool(nil, cfg)
	env.Start(p)

	testenv.Eventually(t, 10*time.Second, func() bool { return p.State().Paused }, "paused")
	testenv.Eventually(t, 10*time.Second, func() bool {
		info, err := env.Conn.JS.Consumer(context.Background(), env.Queue.WithDefaults().Stream, env.Queue.WithDefaults().Consumer)
		return err == nil && info.CachedInfo().Paused
	}, "consumer paused fleet-wide")
	require.Zero(t, env.DLQCount())
	require.Greater(t, env.Pending(), uint64(n/2), "the backlog waits")

	env.Sim.SetCredentials(testenv.AK, testenv.SK) // the key is fixed
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n }, "recovered %d", func() int { return rec.Count(worker.OutcomeRecovered) })
	require.False(t, p.State().Paused)
	require.Zero(t, env.DLQCount())
	requireAllRecovered(t, env, ids)
}

// A run of 403s on distinct jobs pauses instead of dead-lettering; the
// 403'd requests are retried after resume.
func TestForbiddenRunPauses(t *testing.T) {
	const n = 30
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}})
	ids := publishN(env, n, "403")
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Concurrency = 32
	cfg.Gate = worker.GateConfig{PauseProbe: 50 * time.Millisecond, PauseMaxProbe: 200 * time.Millisecond}
	p := env.Pool(nil, cfg)
	env.Start(p)

	testenv.Eventually(t, 60*time.Second, func() bool { return p.State().Paused }, "paused")
	require.Zero(t, env.DLQCount(), "403s in a run are not dead-lettered")

	env.Sim.Configure(codeartssim.WithoutOutcomes()) // the permission is granted
	testenv.Eventually(t, 2*time.Minute, func() bool { return rec.Count(worker.OutcomeRecovered) >= n }, "recovered %d", func() int { return rec.Count(worker.OutcomeRecovered) })
	require.Zero(t, env.DLQCount())
	requireAllRecovered(t, env, ids)
}

// A single 403 among successes is about that job: dead-lettered, whatever
// the concurrency (with --concurrency 1 the 403 waits for its verdict
// without its slot, so the successes behind it still run and no run of one
// pauses the fleet).
func TestSingleForbiddenDeadLettered(t *testing.T) {
	for _, giveConcurrency := range []int{1, 16} {
		t.Run(fmt.Sprintf("concurrency_%d", giveConcurrency), func(t *testing.T) {
			env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}})
			bad := testenv.JobID("403")
			env.Publish(bad, bad)
			ids := publishN(env, 20, "s")
			rec := testenv.NewRecorder()
			cfg := poolConfig(rec)
			cfg.Concurrency = giveConcurrency
			p := env.Pool(nil, cfg)
			env.Start(p)
			testenv.Eventually(t, 30*time.Second, func() bool { return rec.Terminal() == 21 }, "all terminal")
			dls := env.DeadLetters()
			require.Len(t, dls, 1)
			require.Equal(t, bad, dls[0].JobID)
			require.Equal(t, worker.ReasonClientError, dls[0].Reason)
			require.Equal(t, 403, dls[0].StatusCode)
			require.False(t, p.State().Paused)
			require.Zero(t, rec.Retries("unauthorized")+rec.Retries("configuration"), "never paused")
			requireAllRecovered(t, env, ids)
		})
	}
}

// A lone 403 (alone in the queue, or the last request of a drain) has no
// success after it to wait for: it is dead-lettered once nothing else of
// its region is in flight, not after the whole --forbidden-hold (the last
// 403 of a bulk drain held the drain's end by 30 s).
func TestLoneForbiddenDeadLetteredWithoutTheHold(t *testing.T) {
	for _, giveBefore := range []int{0, 20} {
		t.Run(fmt.Sprintf("after_%d_successes", giveBefore), func(t *testing.T) {
			env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}})
			rec := testenv.NewRecorder()
			cfg := poolConfig(rec)
			cfg.Gate = worker.GateConfig{ForbiddenHold: time.Hour}
			p := env.Pool(nil, cfg)
			env.Start(p)
			ids := publishN(env, giveBefore, "s")
			testenv.Eventually(t, time.Minute, func() bool { return rec.Count(worker.OutcomeRecovered) == giveBefore }, "successes first")
			bad := testenv.JobID("403")
			env.Publish(bad, bad)
			testenv.Eventually(t, 2*time.Minute, func() bool { return rec.Count(worker.OutcomeDeadLettered) == 1 }, "the 403 dead-lettered")
			dls := env.DeadLetters()
			require.Len(t, dls, 1)
			require.Equal(t, bad, dls[0].JobID)
			require.Equal(t, worker.ReasonClientError, dls[0].Reason)
			require.Equal(t, 403, dls[0].StatusCode)
			require.Equal(t, 1, dls[0].Attempts, "one call")
			require.False(t, p.State().Paused)
			requireAllRecovered(t, env, ids)
		})
	}
}

// Lease safety: a worker cut off from NATS for longer than AckWait while
// its call is in flight neither acks nor dead-letters the request after;
// the worker that received the redelivery finishes it.
func TestLeaseLostIsDropped(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Queue: queue.Config{AckWait: time.Second},
		Sim:   []codeartssim.Option{codeartssim.WithLatency(2500*time.Millisecond, 0)},
	})
	proxy := testenv.NewProxy(t, strings.TrimPrefix(env.NATS.URL(), "nats://"))
	conn1 := env.ConnectURL(proxy.URL())
	id := testenv.JobID("l")
	env.Publish(id, id)

	rec1 := testenv.NewRecorder()
	cfg1 := poolConfig(rec1)
	cfg1.Concurrency = 1
	p1 := env.Pool(conn1, cfg1)
	env.Start(p1)
	testenv.Eventually(t, 10*time.Second, func() bool { return env.Sim.Stats().Calls == 1 }, "first worker's call in flight")
	proxy.Block() // the first worker loses NATS mid-call

	rec2 := testenv.NewRecorder()
	env.Start(env.Pool(nil, poolConfig(rec2)))
	testenv.Eventually(t, 20*time.Second, func() bool { return rec2.Count(worker.OutcomeRecovered) == 1 }, "second worker recovers it")
	testenv.Eventually(t, 20*time.Second, func() bool { return rec1.Count(worker.OutcomeLeaseLost) == 1 }, "first worker drops it")
	proxy.Unblock()

	require.Equal(t, int64(1), p1.LeaseLost())
	require.Zero(t, rec1.Count(worker.OutcomeRecovered)+rec1.Count(worker.OutcomeDeadLettered)+rec1.Count(worker.OutcomeAckFailed))
	require.Zero(t, env.DLQCount())
	results := env.Results()
	require.Len(t, results, 1, "one terminal record")
	require.Equal(t, id, results[0].JobID)
}

// A request that makes the handler panic on every delivery ends as
// max_deliveries in the DLQ exactly once (through the server's
// MAX_DELIVERIES advisory), and the others are recovered meanwhile.
func TestPanicEveryDeliveryEndsMaxDeliveries(t *testing.T) {
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 3}})
	poison := testenv.JobID("p")
	env.Publish(poison, poison)
	ids := publishN(env, 20, "g")

	rec := testenv.NewRecorder()
	api := wire.Recoverer(env.API)
	crashy := worker.RecoverFunc(func(ctx context.Context, r worker.Request) (string, error) {
		if r.JobID == poison {
			panic("boom")
		}
		return api.Recover(ctx, r)
	})
	p := env.Pool(nil, poolConfig(rec), wire.PoolOptions{ProcessScope: true, Recoverer: crashy})
	env.Start(p)

	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeDeadLettered) == 1 }, "poison dead-lettered")
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) == len(ids) }, "others recovered")
	dls := env.DeadLetters()
	require.Len(t, dls, 1)
	require.Equal(t, worker.ReasonMaxDeliveries, dls[0].Reason)
	require.Equal(t, poison, dls[0].JobID)
	require.Equal(t, uint64(3), dls[0].Deliveries)
	require.Equal(t, poison, dls[0].Original.Body)
	require.Equal(t, 3, rec.Count(worker.OutcomeHandedBack), "one hand-back per panicking delivery")
	require.Zero(t, env.Pending(), "the stranded request was deleted")
	requireAllRecovered(t, env, ids)
	require.Len(t, env.Results(), len(ids)+1)
}

// fleetReplica starts a pool on its own connection, sharing the fleet's
// rate (cap 0: learned) through NATS KV as worker run does.
func fleetReplica(t *testing.T, env *testenv.Env, rec *testenv.Recorder, cap float64) *wire.Pool {
	t.Helper()
	p := env.Pool(env.Connect(), poolConfig(rec), wire.PoolOptions{Rate: cap})
	env.Start(p)
	return p
}

// fleetAllows is what the replicas' limiters admit together (each paces to
// its share of the fleet's rate; 0 is no limit): a state, so a fleet that
// cut itself to a trickle fails a test whatever the machine's load, while
// the calls a CPU-starved machine manages say nothing about the fleet.
func fleetAllows(pools []*wire.Pool) float64 {
	sum := 0.0
	for _, p := range pools {
		r := p.Limiter.Rate()
		if r == 0 {
			return math.Inf(1)
		}
		sum += r
	}
	return sum
}

// Two replicas sharing a 100 req/s quota through NATS KV against an API
// admitting 100 req/s: the API sees about 100 req/s and almost no 429s.
func TestFleetRateLimit(t *testing.T) {
	const (
		n    = 600
		rate = 100.0
	)
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithRateLimit(rate, 10)}})
	ids := publishN(env, n, "r")
	rec := testenv.NewRecorder()
	start := time.Now()
	var pools []*wire.Pool
	for range 2 {
		pools = append(pools, fleetReplica(t, env, rec, rate))
	}
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n }, "all recovered")
	elapsed := time.Since(start).Seconds()
	st := env.Sim.Stats()
	measured := rec.CallRate(200)
	share429 := float64(st.Throttled) / float64(st.Calls)
	t.Logf("measured API rate %.1f req/s (quota %.0f), 429 share %.2f%% of %d calls, %.2fs, the fleet allows %.1f req/s", measured, rate, 100*share429, st.Calls, elapsed, fleetAllows(pools))
	// Behaviour, not speed (the figures are make bench's): the fleet never
	// goes over the shared cap, keeps a good part of it, and meets few 429s
	// (on a quiet machine 0.2-0.8 %; a CPU-starved one bunches calls).
	require.LessOrEqual(t, measured, rate*1.1, "the two replicas together stay under the shared cap")
	require.Greater(t, fleetAllows(pools), rate*0.4, "and keep a good part of it")
	require.Less(t, share429, 0.15, "429s a small share of calls")
	requireAllRecovered(t, env, ids)
	require.Zero(t, env.DLQCount())
}

// Three replicas without --rate-limit against an API admitting 100 req/s
// learn the quota together: a throttle seen by one slows all, so the
// fleet's calls settle near the quota with few 429s, and nothing is
// dead-lettered.
func TestFleetLearnsTheQuotaTogether(t *testing.T) {
	const (
		n    = 1500
		rate = 100.0
	)
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithRateLimit(rate, 10)}})
	ids := publishN(env, n, "q")
	rec := testenv.NewRecorder()
	var pools []*wire.Pool
	for range 3 {
		pools = append(pools, fleetReplica(t, env, rec, 0))
	}
	testenv.Eventually(t, 120*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n }, "all recovered")
	st := env.Sim.Stats()
	measured := rec.CallRate(200)
	share429 := float64(st.Throttled) / float64(st.Calls)
	t.Logf("3 replicas, adaptive only: API rate %.1f req/s (quota %.0f), 429 share %.2f%% of %d calls, the fleet allows %.1f req/s", measured, rate, 100*share429, st.Calls, fleetAllows(pools))
	// Behaviour, not speed (the figures are make bench's; a CPU-starved
	// machine measured 15-79 req/s here): learning together, the fleet
	// neither collapses nor overruns the quota.
	require.Greater(t, fleetAllows(pools), rate*0.4, "the fleet's rate keeps a good part of the quota")
	require.LessOrEqual(t, measured, rate*1.1, "and never more than the API admits")
	require.Less(t, share429, 0.15, "429s stay a small share of calls, not the third an uncoordinated fleet draws (the figures: make bench)")
	requireAllRecovered(t, env, ids)
	require.Zero(t, env.DLQCount())
}

// A few jobs the API always answers 503 open the breaker, but cannot keep
// it open: once their probes failed, fresh requests probe instead, so new
// work keeps flowing and the poison jobs spend their budget meanwhile.
func TestAlwaysFailingJobsDoNotBlockThePool(t *testing.T) {
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 2}})
	poison := make([]string, 12)
	for i := range poison {
		poison[i] = testenv.JobID("e")
		statuses := make([]int, 200)
		for j := range statuses {
			statuses[j] = 503
		}
		env.Sim.Script(poison[i], statuses...)
		env.Publish(poison[i], poison[i])
	}
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.TriesPerDelivery = 2
	p := env.Pool(nil, cfg)
	env.Start(p)
	testenv.Eventually(t, 30*time.Second, func() bool { return p.State().Regions[""].Breaker != retry.BreakerClosed }, "breaker opens")

	good := publishN(env, 50, "g")
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) == len(good) }, "new work recovered")
	requireAllRecovered(t, env, good)
	isPoison := map[string]bool{}
	for _, id := range poison {
		isPoison[id] = true
		require.Zero(t, env.Sim.Recovered(id))
	}
	for _, d := range env.DeadLetters() {
		require.True(t, isPoison[d.JobID], "only poison jobs are dead-lettered, got %s", d.JobID)
		require.Equal(t, worker.ReasonRetriesExhausted, d.Reason)
	}
}

// A block of jobs that are each forbidden looks like a missing permission
// and pauses. Held requests take turns at the pause probe, so the one that
// can prove the credentials gets its turn; after the resume the forbidden
// jobs are tried once more and, answered 403 again, dead-lettered at once:
// no pause, resume and retry loop, and a bounded number of 403 calls.
func TestForbiddenBlockAfterResumeDeadLettered(t *testing.T) {
	const nBad, nGood = 30, 200
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{
		codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
		codeartssim.WithOutcome("gd", codeartssim.StandardOutcome(http.StatusForbidden)),
	}})
	bad := publishN(env, nBad, "403")
	proof := publishN(env, 1, "gd")
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Concurrency = 32
	cfg.Gate = worker.GateConfig{PauseProbe: 20 * time.Millisecond, PauseMaxProbe: 50 * time.Millisecond}
	p := env.Pool(nil, cfg)
	env.Start(p)
	testenv.Eventually(t, 60*time.Second, func() bool { return p.State().Paused }, "paused")
	require.Zero(t, env.DLQCount(), "403s in a run are not dead-lettered")

	// The "gd" job is allowed now; the "403" ones stay forbidden.
	env.Sim.Configure(codeartssim.WithoutOutcomes(), codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()))
	testenv.Eventually(t, 2*time.Minute, func() bool { return rec.Terminal() == nBad+1 }, "terminal %d", rec.Terminal)
	good := publishN(env, nGood, "s")
	testenv.Eventually(t, 2*time.Minute, func() bool { return rec.Terminal() == nBad+1+nGood }, "terminal %d", rec.Terminal)

	dls := env.DeadLetters()
	require.Len(t, dls, nBad)
	for _, d := range dls {
		require.Contains(t, bad, d.JobID)
		require.Equal(t, worker.ReasonClientError, d.Reason)
		require.Equal(t, 403, d.StatusCode)
	}
	requireAllRecovered(t, env, append(proof, good...))
	// Each forbidden job: its first call, at most one failed probe, one
	// call after the resume.
	require.LessOrEqual(t, env.Sim.Stats().ByStatus[403], int64(1+3*nBad))
	require.False(t, p.State().Paused)
}
