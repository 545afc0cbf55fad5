package worker_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// faults injects failures at the steps that end a request: each counter is
// how many of the next such steps fail.
type faults struct {
	// ackFail: the ack is not confirmed. With ackNak the message is handed
	// back at once (so the redelivery comes without waiting AckWait), else
	// it is left to time out.
	ackFail atomic.Int32
	ackNak  bool
	// resultFail: the result event is not stored.
	resultFail atomic.Int32
	// claimFail: the claim is not made (KV down); claimLost: it is made
	// but its answer is lost (the caller sees an error).
	claimFail, claimLost atomic.Int32
	// readFail: reading a claim fails.
	readFail atomic.Int32
	// deleteFail: the sweep's delete of a stranded request fails.
	deleteFail atomic.Int32
}

func take(n *atomic.Int32) bool { return n.Add(-1) >= 0 }

var errInjected = errors.New("injected fault")

type faultSource struct {
	wire.Source // Flush and Connected, for the lease check
	f           *faults
}

func (s faultSource) Fetch(ctx context.Context, n int, deliver func(worker.Delivery)) error {
	return s.Source.Fetch(ctx, n, func(d worker.Delivery) { deliver(faultDelivery{d, s.f}) })
}

type faultDelivery struct {
	worker.Delivery
	f *faults
}

func (d faultDelivery) Ack(ctx context.Context) error {
	if take(&d.f.ackFail) {
		if d.f.ackNak {
			_ = d.Nak(0)
		}
		return errInjected
	}
	return d.Delivery.Ack(ctx)
}

type faultResults struct {
	next worker.Resulter
	f    *faults
}

func (r faultResults) Result(ctx context.Context, id string, data []byte) error {
	if take(&r.f.resultFail) {
		return errInjected
	}
	return r.next.Result(ctx, id, data)
}

type faultClaims struct {
	next   worker.Claims
	f      *faults
	claims atomic.Int32 // Claim calls
	reads  atomic.Int32 // Claimed calls
}

func (c *faultClaims) Claim(ctx context.Context, key string, value []byte) ([]byte, bool, error) {
	c.claims.Add(1)
	if take(&c.f.claimFail) {
		return nil, false, errInjected
	}
	stored, won, err := c.next.Claim(ctx, key, value)
	if err == nil && take(&c.f.claimLost) {
		return nil, false, errInjected
	}
	return stored, won, err
}

func (c *faultClaims) Claimed(ctx context.Context, key string) ([]byte, bool, error) {
	c.reads.Add(1)
	if take(&c.f.readFail) {
		return nil, false, errInjected
	}
	return c.next.Claimed(ctx, key)
}

type faultStranded struct {
	next worker.StrandedSource
	f    *faults
}

func (s faultStranded) NextStranded(ctx context.Context) (worker.StrandedMsg, error) {
	m, err := s.next.NextStranded(ctx)
	if err != nil {
		return m, err
	}
	del := m.Delete
	m.Delete = func(ctx context.Context) error {
		if take(&s.f.deleteFail) {
			return errInjected
		}
		return del(ctx)
	}
	return m, nil
}

// claimPool is the pool wire.NewPool builds (claims, results, sweep,
// requeue, state reads), with f's faults between it and NATS.
func claimPool(t *testing.T, env *testenv.Env, cfg worker.Config, f *faults) (*worker.Pool, *faultClaims) {
	t.Helper()
	ctx := context.Background()
	cons, err := env.Conn.Consumer(ctx)
	require.NoError(t, err)
	adv, err := env.Conn.Advisories(ctx)
	require.NoError(t, err)
	outcomes, err := env.Conn.Outcomes(ctx)
	require.NoError(t, err)
	claims := &faultClaims{next: outcomes, f: f}
	cfg.AckWait, cfg.MaxDeliver = cons.Settings()
	cfg.Decode.ValidRegion = env.API.AllowedRegion
	cfg.Results = faultResults{next: env.Conn, f: f}
	cfg.Claims = claims
	cfg.Stranded = faultStranded{next: wire.Stranded{A: adv}, f: f}
	cfg.Requeue = wire.Requeuer{C: env.Conn}
	cfg.States = wire.States{C: env.API}
	p, err := worker.New(cfg, faultSource{Source: wire.Source{C: cons}, f: f}, wire.Recoverer(env.API), env.Conn)
	require.NoError(t, err)
	return p, claims
}

// outcomesOf counts the terminal records of job across the results stream
// and the dead-letter stream: what a user reconciling the run sees.
func outcomesOf(t *testing.T, env *testenv.Env, job string) (results map[string]int, deadLetters []worker.DeadLetter) {
	t.Helper()
	results = map[string]int{}
	for _, r := range env.Results() {
		if r.JobID == job {
			results[r.Outcome+"/"+r.Reason]++
		}
	}
	for _, d := range env.DeadLetters() {
		if d.JobID == job {
			deadLetters = append(deadLetters, d)
		}
	}
	return results, deadLetters
}

// A request has one terminal outcome whatever fails after it was decided:
// a failed result publish or ack brings the request back, and the
// redelivery stores the outcome already claimed without calling the API
// again, even though the API would now answer otherwise. A KV that fails
// hands the request back; it never dead-letters it nor makes two outcomes.
func TestOneOutcomeWhenFinishingFails(t *testing.T) {
	tests := []struct {
		name string
		// script: the job's answers, then success.
		script    []int
		skip      bool // --skip-enabled, the job already enabled
		setup     func(*faults)
		wantOut   string // outcome/reason in the results stream
		wantDead  string // reason of the one dead letter, "" for none
		wantCalls int64
		wantReads int64 // ShowDisable reads
	}{
		{
			name: "dead letter stored, result publish fails", script: []int{404},
			setup:   func(f *faults) { f.resultFail.Store(1) },
			wantOut: "dead_lettered/client_error", wantDead: worker.ReasonClientError, wantCalls: 1,
		},
		{
			name: "dead letter and result stored, ack fails", script: []int{404},
			setup:   func(f *faults) { f.ackFail.Store(1); f.ackNak = true },
			wantOut: "dead_lettered/client_error", wantDead: worker.ReasonClientError, wantCalls: 1,
		},
		{
			name: "dead letter and result stored, ack fails twice", script: []int{404},
			setup:   func(f *faults) { f.ackFail.Store(2); f.ackNak = true },
			wantOut: "dead_lettered/client_error", wantDead: worker.ReasonClientError, wantCalls: 1,
		},
		{
			name:    "recovered, ack fails",
			setup:   func(f *faults) { f.ackFail.Store(1); f.ackNak = true },
			wantOut: "recovered/", wantCalls: 1,
		},
		{
			name: "claim stored, its answer lost", script: []int{404},
			setup:   func(f *faults) { f.claimLost.Store(1) },
			wantOut: "dead_lettered/client_error", wantDead: worker.ReasonClientError, wantCalls: 1,
		},
		{
			name: "skip-enabled: already enabled, ack fails", skip: true,
			setup:   func(f *faults) { f.ackFail.Store(1); f.ackNak = true },
			wantOut: "already_enabled/", wantCalls: 0, wantReads: 1,
		},
		{
			// The redelivery cannot read the claim, so it calls the API
			// (which now answers success); its own claim finds the dead
			// letter's and stores that.
			name: "result publish fails, then the claim read fails", script: []int{404},
			setup:   func(f *faults) { f.resultFail.Store(1); f.readFail.Store(1) },
			wantOut: "dead_lettered/client_error", wantDead: worker.ReasonClientError, wantCalls: 2,
		},
		{
			// The outcome is decided: the delivery waits for the KV
			// (keeping its lease) instead of calling the API again.
			name: "KV down at the claim", script: []int{404},
			setup:   func(f *faults) { f.claimFail.Store(5) },
			wantOut: "dead_lettered/client_error", wantDead: worker.ReasonClientError, wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []codeartssim.Option
			if tt.skip {
				opts = append(opts, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 1, Seed: 1}))
			}
			env := testenv.New(t, testenv.Options{Sim: opts})
			id := testenv.JobID("c")
			if tt.skip {
				id = env.Sim.Jobs()[0].ID
			}
			env.Sim.Script(id, tt.script...)
			env.Publish(id, id)

			f := &faults{}
			tt.setup(f)
			rec := testenv.NewRecorder()
			cfg := poolConfig(rec)
			cfg.SkipEnabled = tt.skip
			p, _ := claimPool(t, env, cfg, f)
			env.Start(p)
			testenv.Eventually(t, 30*time.Second, func() bool { return env.Pending() == 0 }, "request finished")

			results, dead := outcomesOf(t, env, id)
			require.Equal(t, map[string]int{tt.wantOut: 1}, results, "one result event")
			if tt.wantDead == "" {
				require.Empty(t, dead, "no dead letter")
			} else {
				require.Len(t, dead, 1, "one dead letter")
				require.Equal(t, tt.wantDead, dead[0].Reason)
				require.Equal(t, uint64(1), dead[0].Deliveries, "the first delivery's record")
			}
			st := env.Sim.Stats()
			require.Equal(t, tt.wantCalls, st.Jobs[id].Calls, "recover calls")
			require.Equal(t, tt.wantReads, st.Reads[codeartssim.ReadDisable], "state reads")
			require.Zero(t, rec.Count(worker.OutcomeRecovered)+rec.Count(worker.OutcomeDeadLettered)+
				rec.Count(worker.OutcomeAlreadyEnabled)-1, "one terminal outcome reported: %v", rec.Outcomes())
		})
	}
}

// A request recovered on its last delivery whose ack fails reaches
// MaxDeliver: the max-deliveries sweep finds the recovered outcome claimed
// and deletes the request without dead-lettering it, also when its first
// delete fails.
func TestStrandedAfterRecoveredKeepsOneOutcome(t *testing.T) {
	for _, deleteFail := range []int32{0, 1} {
		t.Run("delete fails "+strconv.Itoa(int(deleteFail)), func(t *testing.T) {
			env := testenv.New(t, testenv.Options{Queue: queue.Config{AckWait: time.Second, MaxDeliver: 1}})
			id := testenv.JobID("s")
			env.Publish(id, id)
			f := &faults{}
			f.ackFail.Store(1) // left to time out: MaxDeliver 1 makes it stranded
			f.deleteFail.Store(deleteFail)
			rec := testenv.NewRecorder()
			p, _ := claimPool(t, env, poolConfig(rec), f)
			env.Start(p)
			testenv.Eventually(t, 60*time.Second, func() bool { return env.Pending() == 0 }, "stranded request settled")
			results, dead := outcomesOf(t, env, id)
			require.Equal(t, map[string]int{"recovered/": 1}, results)
			require.Empty(t, dead, "the sweep kept the claimed outcome")
			require.Zero(t, env.DLQCount())
			testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) == 1 }, "outcome reported")
			require.Equal(t, int64(1), env.Sim.Stats().Jobs[id].Calls)
			require.Equal(t, 1, rec.Count(worker.OutcomeAckFailed))
			require.Zero(t, rec.Count(worker.OutcomeDeadLettered))
		})
	}
}

// A requeued copy (a hand-back whose original was still finished, e.g. its
// ack failed after the requeue) of a request that has its outcome ends with
// that outcome: no API call, no second record.
func TestRequeuedCopyOfFinishedRequest(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := testenv.JobID("r")
	env.Sim.Script(id, 404) // then success: a second call would recover it
	env.Publish(id, id)
	rec := testenv.NewRecorder()
	p, claims := claimPool(t, env, poolConfig(rec), &faults{})
	env.Start(p)
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeDeadLettered) == 1 }, "dead-lettered")
	require.Zero(t, claims.reads.Load(), "a first delivery reads no claim")

	dls := env.DeadLetters()
	require.Len(t, dls, 1)
	origin := strconv.FormatUint(dls[0].Original.StreamSeq, 10) + "-" + strconv.FormatInt(dls[0].EnqueuedAt.UnixNano(), 10)
	_, err := env.Conn.Publish(context.Background(), env.Conn.Config().Subject, "requeue-"+origin+"-1",
		nats.Header{worker.HeaderOrigin: {origin}, worker.HeaderTries: {"0"}, worker.HeaderDeliveries: {"1"}}, []byte(id))
	require.NoError(t, err)
	testenv.Eventually(t, 30*time.Second, func() bool { return env.Pending() == 0 && rec.Terminal() == 2 }, "copy settled")

	results, dead := outcomesOf(t, env, id)
	require.Equal(t, map[string]int{"dead_lettered/client_error": 1}, results)
	require.Len(t, dead, 1)
	require.Equal(t, int64(1), env.Sim.Stats().Jobs[id].Calls, "the copy made no API call")
	require.Zero(t, rec.Count(worker.OutcomeRecovered))
	require.Equal(t, int32(1), claims.reads.Load(), "the copy read the claim")
}

// While the KV cannot take a claim the delivery keeps the request (no
// delivery spent, no dead letter); at shutdown it is handed back after
// the drain timeout, and the next worker finishes it with one outcome.
func TestClaimWaitsForTheKVThenHandsBack(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	id := testenv.JobID("k")
	env.Sim.Script(id, 404)
	env.Publish(id, id)
	f := &faults{}
	f.claimFail.Store(1 << 30) // the KV is down
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.DrainTimeout = time.Second
	p, claims := claimPool(t, env, cfg, f)
	run := env.Start(p)
	testenv.Eventually(t, 30*time.Second, func() bool { return claims.claims.Load() >= 3 }, "claim retried")
	run.Stop(t)
	require.Equal(t, 1, rec.Count(worker.OutcomeHandedBack), "handed back at the drain timeout: %v", rec.Outcomes())
	require.Zero(t, rec.Terminal())
	require.Zero(t, env.DLQCount(), "a KV outage dead-letters nothing")
	require.Equal(t, uint64(1), env.Pending(), "the request is back in the stream")

	f.claimFail.Store(0) // the KV is back
	rec2 := testenv.NewRecorder()
	p2, _ := claimPool(t, env, poolConfig(rec2), f)
	env.Start(p2)
	testenv.Eventually(t, 30*time.Second, func() bool { return env.Pending() == 0 }, "finished")
	results, dead := outcomesOf(t, env, id)
	require.Equal(t, map[string]int{"recovered/": 1}, results, "the claim was never made: the copy's outcome")
	require.Empty(t, dead)
	require.Equal(t, 1, rec2.Count(worker.OutcomeRecovered))
}
