package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// A region's pause and open breaker are the fleet's: three replicas on one
// NATS learn them together and one of them probes, so during a 401 window,
// a route-404 window or an outage the API sees about one probe per probe
// interval in all (three replicas deciding alone sent three), nothing is
// dead-lettered, and everything is recovered once the fault ends.
func TestFleetProbesAsOne(t *testing.T) {
	const (
		n        = 600
		interval = 200 * time.Millisecond
		span     = 3 * time.Second
	)
	for _, tt := range []struct {
		name string
		give func(*codeartssim.Server, bool) // the fault on or off
		held func(worker.RegionState) bool
	}{
		{
			name: "unauthorized",
			give: func(s *codeartssim.Server, on bool) {
				if on {
					s.SetCredentials(testenv.AK, "rotated-secret")
				} else {
					s.SetCredentials(testenv.AK, testenv.SK)
				}
			},
			held: func(r worker.RegionState) bool { return r.Paused },
		},
		{
			name: "route404",
			give: func(s *codeartssim.Server, on bool) { s.Configure(codeartssim.WithRoute404(on)) },
			held: func(r worker.RegionState) bool { return r.Paused },
		},
		{
			name: "outage",
			give: func(s *codeartssim.Server, on bool) { s.SetOutage(on) },
			held: func(r worker.RegionState) bool { return r.Breaker != retry.BreakerClosed },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Calls of 50 ms keep every replica busy when the fault begins.
			env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithLatency(50*time.Millisecond, 0)}})
			ids := publishN(env, n, "h")
			rec := testenv.NewRecorder()
			cfg := poolConfig(rec)
			cfg.Concurrency = 8
			cfg.Gate = worker.GateConfig{PauseProbe: interval, PauseMaxProbe: interval, BreakerOpen: interval, BreakerMaxOpen: interval}
			pools := make([]*wire.Pool, 3)
			for i := range pools {
				c := cfg
				c.Name = fmt.Sprintf("replica-%d", i)
				pools[i] = env.Pool(env.Connect(), c, wire.PoolOptions{})
				env.Start(pools[i])
			}
			testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= 30 }, "the drain is under way")
			tt.give(env.Sim, true)
			testenv.Eventually(t, 30*time.Second, func() bool {
				for _, p := range pools {
					if tt.held(p.State().Regions[""]) {
						return true
					}
				}
				return false
			}, "the region is held")
			// Calls over a span of the fault, once the calls in flight when it
			// began have answered: probes only.
			settle := time.NewTimer(2 * interval)
			<-settle.C
			before, from := env.Sim.Stats().Calls, time.Now()
			hold := time.NewTimer(span)
			<-hold.C
			during, elapsed := env.Sim.Stats().Calls-before, time.Since(from)
			tt.give(env.Sim, false)

			testenv.Eventually(t, 90*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n },
				"recovered %d of %d", rec.Count(worker.OutcomeRecovered), n)
			require.Zero(t, env.DLQCount(), "a pause or an outage dead-letters nothing")
			requireAllRecovered(t, env, ids)
			// One probe per interval for the whole fleet (a slow machine
			// probes later, never more often), and three more for the
			// view's sync and a prober's hand-over; three replicas each
			// probing alone send three times the intervals.
			intervals := float64(elapsed) / float64(interval)
			t.Logf("%s: %d API calls in %v of the fault (%.0f probe intervals) from 3 replicas", tt.name, during, elapsed.Round(time.Millisecond), intervals)
			require.LessOrEqual(t, float64(during), intervals+3, "the fleet probes as one replica")
		})
	}
}

// Every replica restarted while the region is paused (a rollout that fixes
// the endpoint, say) hands its held requests back, and the consumer stays
// paused: no replica holds a request to probe with. The prober lets
// requests in for the probe, so the fleet resumes soon after the fault is
// gone, not when the consumer pause's lease ends (10 minutes here; the
// old code waited it out).
func TestPauseOutlivesNoRestart(t *testing.T) {
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithLatency(50*time.Millisecond, 0)}})
	ids := publishN(env, 300, "h")
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Concurrency = 8
	cfg.Gate = worker.GateConfig{PauseProbe: 200 * time.Millisecond, PauseMaxProbe: time.Second, PauseLease: 10 * time.Minute}
	start := func(name string) (*wire.Pool, *testenv.Running) {
		c := cfg
		c.Name = name
		p := env.Pool(env.Connect(), c, wire.PoolOptions{})
		return p, env.Start(p)
	}
	pools := make([]*wire.Pool, 3)
	runs := make([]*testenv.Running, 3)
	for i := range pools {
		pools[i], runs[i] = start(fmt.Sprintf("replica-%d", i))
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= 30 }, "the drain is under way")
	env.Sim.Configure(codeartssim.WithRoute404(true))
	testenv.Eventually(t, 30*time.Second, func() bool { return pools[0].State().Paused }, "paused fleet-wide")
	for i := range pools { // a rollout: each replica replaced in turn
		runs[i].Stop(t)
		pools[i], runs[i] = start(fmt.Sprintf("replica-%d-new", i))
	}
	env.Sim.Configure(codeartssim.WithRoute404(false))
	testenv.Eventually(t, 2*time.Minute, func() bool { return rec.Count(worker.OutcomeRecovered) >= len(ids) },
		"recovered %d of %d after the fault", func() int { return rec.Count(worker.OutcomeRecovered) }, len(ids))
	require.Zero(t, env.DLQCount(), "a pause dead-letters nothing")
	requireAllRecovered(t, env, ids)
}
