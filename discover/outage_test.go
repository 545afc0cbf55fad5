package discover_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/discover"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// outageAPI holds jobs of one project, all disabled, and answers every
// read 503 APIG.0613 for outage from its startAt-th call on (fake time),
// counting them.
type outageAPI struct {
	jobs    int
	startAt int
	outage  time.Duration

	from, until time.Time

	mu              sync.Mutex
	calls, inOutage int
}

func (a *outageAPI) answer() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.calls == a.startAt {
		a.from, a.until = time.Now(), time.Now().Add(a.outage)
	}
	if now := time.Now(); !now.Before(a.from) && now.Before(a.until) {
		a.inOutage++
		return &codearts.APIError{StatusCode: 503, ErrorCode: "APIG.0613", ErrorMsg: "backend unavailable"}
	}
	return nil
}

func (a *outageAPI) ListProjectJobs(_ context.Context, _ string, pageIndex, pageSize int) (codearts.Page, error) {
	if err := a.answer(); err != nil {
		return codearts.Page{}, err
	}
	p := codearts.Page{Total: a.jobs, Shape: "jobs"}
	for i := pageIndex * pageSize; i < min((pageIndex+1)*pageSize, a.jobs); i++ {
		p.Jobs = append(p.Jobs, codearts.JobSummary{ID: fmt.Sprintf("%032d", i), Disabled: true})
	}
	return p, nil
}

func (a *outageAPI) ListJobs(context.Context, int, int) (codearts.Page, error) {
	return codearts.Page{}, &codearts.APIError{StatusCode: 400, ErrorCode: "CB.00060200"}
}

func (a *outageAPI) JobState(context.Context, string, string) (codearts.JobState, error) {
	if err := a.answer(); err != nil {
		return codearts.JobState{}, err
	}
	return codearts.JobState{Disabled: true, DisabledBy: "ops-bot"}, nil
}

// An API outage in the middle of a discovery with 16 state reads in flight
// costs the breaker's probes (about one per half second), not a retry per
// read in flight; the run finishes once the API is back, every job found.
// Without the breaker the 16 reads each retry on their own backoff (over
// 900 calls in this minute).
func TestDiscoverDuringAnOutageProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const outage = time.Minute
		start := time.Now()
		api := &outageAPI{jobs: 400, startAt: 30, outage: outage}
		policy := retry.Policy{Initial: 100 * time.Millisecond, Max: time.Second}
		ids, p := collect(t, discover.Config{API: api, Projects: []string{"p1"}, Details: true, StateReads: 16, Policy: policy})
		require.Len(t, ids, 400, "every job found once the API is back")
		require.GreaterOrEqual(t, time.Since(start), outage, "it waited the outage out")
		require.GreaterOrEqual(t, p.BreakerOpened, 1)
		// The breaker opens after at most a window of calls (20) and the
		// reads in flight (16) fail; then a probe at most every 250-500 ms.
		bound := 20 + 16 + int(outage/(250*time.Millisecond))
		t.Logf("%d calls during a %s outage (bound %d), %d in all", api.inOutage, outage, bound, api.calls)
		require.LessOrEqual(t, api.inOutage, bound)
	})
}
