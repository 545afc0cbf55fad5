package worker_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// regionOutage answers 503 APIG.0201 for one region while down is set and
// sends the rest to the real API client (the simulator behind one
// --endpoint cannot tell regions apart).
type regionOutage struct {
	next   worker.Recoverer
	region string
	down   atomic.Bool
	calls  atomic.Int64 // calls to the broken region
}

func (r *regionOutage) Recover(ctx context.Context, req worker.Request) (string, error) {
	if req.Region == r.region {
		r.calls.Add(1)
		if r.down.Load() {
			return "", &codearts.APIError{StatusCode: 503, ErrorCode: "APIG.0201", ErrorMsg: "backend unavailable"}
		}
	}
	return r.next.Recover(ctx, req)
}

// One region's outage holds only its own requests: they wait at its open
// breaker without their fetch slots, the pool goes on fetching, and every
// request of the healthy region is recovered during the outage; after it,
// the held ones are recovered too and nothing is dead-lettered.
func TestRegionOutageDoesNotStallOthers(t *testing.T) {
	const broken, healthy = 40, 200
	env := testenv.New(t, testenv.Options{API: codearts.Config{Regions: []string{"ap-southeast-1"}}})
	out := &regionOutage{next: wire.Recoverer(env.API), region: "ap-southeast-1"}
	out.down.Store(true)

	// The broken region's requests first, then the healthy region's.
	var brokenIDs, healthyIDs []string
	for range broken {
		id := testenv.JobID("r")
		body, err := json.Marshal(map[string]string{"job_id": id, "region": "ap-southeast-1"})
		require.NoError(t, err)
		env.Publish(string(body), id)
		brokenIDs = append(brokenIDs, id)
	}
	healthyIDs = publishN(env, healthy, "h")

	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Concurrency = 4 // fewer slots than the broken region's requests
	p := env.Pool(nil, cfg, wire.PoolOptions{ProcessScope: true, Recoverer: out})
	env.Start(p)

	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= healthy },
		"the healthy region's requests recovered during the other's outage (%d)", rec.Count(worker.OutcomeRecovered))
	st := p.State()
	require.Equal(t, retry.BreakerOpen, st.Regions["ap-southeast-1"].Breaker, "the broken region's breaker is open")
	require.Equal(t, retry.BreakerClosed, st.Regions[""].Breaker, "the healthy region's is not")
	require.False(t, st.Paused)
	requireAllRecovered(t, env, healthyIDs)
	for _, id := range brokenIDs {
		require.Zero(t, env.Sim.Recovered(id), "job %s of the broken region", id)
	}

	out.down.Store(false)
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= broken+healthy },
		"all recovered after the outage (%d)", rec.Count(worker.OutcomeRecovered))
	requireAllRecovered(t, env, brokenIDs)
	require.Zero(t, env.DLQCount(), "an outage of one region dead-letters nothing")
	require.Zero(t, env.Pending())
}

// regionThrottle answers 429 APIG.0308 to the first n calls for one region
// and sends the rest to the real API client.
type regionThrottle struct {
	next   worker.Recoverer
	region string
	left   atomic.Int64
}

func (r *regionThrottle) Recover(ctx context.Context, req worker.Request) (string, error) {
	if req.Region == r.region && r.left.Add(-1) >= 0 {
		return "", &codearts.APIError{StatusCode: 429, ErrorCode: "APIG.0308", ErrorMsg: "too many requests"}
	}
	return r.next.Recover(ctx, req)
}

// Quotas are per regional endpoint: throttles in one region lower that
// region's rate only; a request naming the default region by name shares
// the default region's limiter.
func TestRegionThrottleLowersOnlyItsRate(t *testing.T) {
	const n = 60
	env := testenv.New(t, testenv.Options{API: codearts.Config{Regions: []string{"ap-southeast-1"}}})
	thr := &regionThrottle{next: wire.Recoverer(env.API), region: "ap-southeast-1"}
	thr.left.Store(10)
	var ids []string
	for i := range n {
		id := testenv.JobID("t")
		region := "ap-southeast-1"
		if i%2 == 1 {
			region = env.API.Regions()[0] // the default region, by name
		}
		body, err := json.Marshal(map[string]string{"job_id": id, "region": region})
		require.NoError(t, err)
		env.Publish(string(body), id)
		ids = append(ids, id)
	}
	rec := testenv.NewRecorder()
	p := env.Pool(nil, poolConfig(rec), wire.PoolOptions{ProcessScope: true, Recoverer: thr})
	env.Start(p)

	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n }, "recovered")
	requireAllRecovered(t, env, ids)
	require.Zero(t, env.DLQCount())
	require.Positive(t, p.Limiters.Region("ap-southeast-1").Rate(), "the throttled region's rate was lowered")
	require.Zero(t, p.Limiters.Region("").Rate(), "the default region's is untouched")
	require.Same(t, p.Limiters.Region(""), p.Limiters.Region(env.API.Regions()[0]))
}
