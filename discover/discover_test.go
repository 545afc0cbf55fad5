package discover_test

import (
	"context"
	"errors"
	"net/http"
	"path"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/discover"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testAK = "HPUATESTACCESSKEY0001"
	testSK = "testSecretKey0123456789abcdefghijklmnopq"
)

// setup starts a signing simulator with opts and a client for it.
func setup(t *testing.T, opts ...codeartssim.Option) (*codeartssim.Server, *codearts.Client) {
	t.Helper()
	sim := codeartssim.New(append([]codeartssim.Option{codeartssim.WithCredentials(testAK, testSK)}, opts...)...)
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { require.NoError(t, sim.Close()) })
	c, err := codearts.NewClient(codearts.Config{
		Endpoint: sim.URL(), ProjectID: "0123456789abcdef0123456789abcdef", Timeout: 5 * time.Second,
		Credentials: codearts.Credentials{AK: testAK, SK: testSK},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return sim, c
}

// fastPolicy keeps the tests' waits short: throttles' Retry-After (1 s on
// the wire) is capped at 20 ms.
var fastPolicy = retry.Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxRetryAfter: 20 * time.Millisecond}

func collect(t *testing.T, cfg discover.Config) ([]string, discover.Progress) {
	t.Helper()
	var ids []string
	p, err := discover.Run(t.Context(), cfg, func(j discover.Job) error {
		ids = append(ids, j.ID)
		return nil
	})
	require.NoError(t, err)
	return ids, p
}

// The acceptance: 10,000 jobs in 7 projects, 3,000 disabled, page
// sizes that do not divide evenly, both list shapes, a throttle and a 5xx
// in the middle: exactly the 3,000 ids.
func TestDiscoverFindsExactlyTheDisabled(t *testing.T) {
	for _, tt := range []struct {
		name      string
		giveShape codeartssim.ListShape
		givePage  int
		giveAll   bool
	}{
		{"sdk shape, pages of 100", codeartssim.ShapeSDK, 100, false},
		{"result shape, pages of 37", codeartssim.ShapeResult, 37, false},
		{"all projects, pages of 99", codeartssim.ShapeSDK, 99, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim, c := setup(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 7, Jobs: 10_000, Disabled: 0.3, Seed: 13}),
				codeartssim.WithListShape(tt.giveShape))
			// The 20th read is throttled (429), the 40th CodeArts' own
			// throttle, the 41st a 503, the 60th a proxy's 502.
			sim.ScriptReads(20, codeartssim.StandardOutcome(http.StatusTooManyRequests))
			sim.ScriptReads(40, codeartssim.BackendThrottle, codeartssim.StandardOutcome(http.StatusServiceUnavailable))
			sim.ScriptReads(60, codeartssim.StandardOutcome(http.StatusBadGateway))
			lim, err := retry.NewLimiter(retry.LimiterConfig{})
			require.NoError(t, err)
			cfg := discover.Config{API: c, PageSize: tt.givePage, Policy: fastPolicy, Limiter: lim}
			if tt.giveAll {
				cfg.AllProjects = true
			} else {
				cfg.Projects = sim.Projects()
			}

			ids, p := collect(t, cfg)

			want := sim.DisabledJobs()
			require.Len(t, want, 3000)
			require.Equal(t, want, ids, "exactly the disabled jobs, once each, in list order")
			require.Equal(t, 10_000, p.Listed)
			require.Equal(t, 10_000, p.Total)
			require.Equal(t, 3000, p.Disabled)
			require.Equal(t, 3000, p.Matched)
			// At least: a call timing out on a loaded machine is retried too.
			require.GreaterOrEqual(t, p.Retries, 4, "the four faults were retried")
			require.GreaterOrEqual(t, p.Throttles, 2)
			require.Zero(t, p.StateReads, "no filter needs a state read")
		})
	}
}

func TestDiscoverFilters(t *testing.T) {
	since := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	sim, c := setup(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 2, Jobs: 40, Disabled: 0.5, Seed: 5, DisabledAt: since.Add(-2 * time.Hour)}))
	jobs := sim.Jobs()
	// Two jobs disabled by alice after the outage began, one before.
	sim.Disable(jobs[0].ID, "alice", "outage", since.Add(time.Minute))
	sim.Disable(jobs[1].ID, "alice", "outage", since.Add(2*time.Minute))
	sim.Disable(jobs[2].ID, "alice", "old", since.Add(-time.Hour))

	ids, p := collect(t, discover.Config{API: c, Projects: sim.Projects(), Policy: fastPolicy,
		Filter: discover.Filter{DisabledAfter: since, DisabledBy: []string{"alice"}}})
	require.Equal(t, []string{jobs[0].ID, jobs[1].ID}, ids)
	require.Equal(t, p.Disabled, p.StateReads, "one state read per disabled job")

	ids, _ = collect(t, discover.Config{API: c, AllProjects: true, Policy: fastPolicy, Filter: discover.Filter{Name: "build-0001?"}})
	var want []string
	for _, j := range sim.Jobs() {
		if ok, _ := path.Match("build-0001?", j.Name); ok && j.Disabled {
			want = append(want, j.ID)
		}
	}
	require.NotEmpty(t, want)
	require.Equal(t, want, ids, "the disabled jobs named build-00010 to build-00019")

	// Details fill who, why and when; a job enabled since the list is left out.
	var got []discover.Job
	_, err := discover.Run(t.Context(), discover.Config{API: c, Projects: []string{jobs[0].ProjectID}, Details: true, Policy: fastPolicy,
		Filter: discover.Filter{Name: jobs[0].Name}}, func(j discover.Job) error {
		got = append(got, j)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []discover.Job{{ID: jobs[0].ID, ProjectID: jobs[0].ProjectID, Name: jobs[0].Name, Creator: jobs[0].Creator,
		DisabledBy: "alice", DisabledReason: "outage", DisabledAt: since.Add(time.Minute)}}, got)

	require.ErrorContains(t, discover.Config{API: c, AllProjects: true, Filter: discover.Filter{Name: "["}}.Validate(), `name pattern "["`)
	require.ErrorContains(t, discover.Config{API: c}.Validate(), "no project")
}

func TestDiscoverStopsOnAnAnswerWrongForEveryPage(t *testing.T) {
	sim, c := setup(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 300, Disabled: 1}))
	sim.ScriptReads(2, codeartssim.IAMDenied)
	n := 0
	_, err := discover.Run(t.Context(), discover.Config{API: c, Projects: sim.Projects(), Policy: fastPolicy}, func(discover.Job) error {
		n++
		return nil
	})
	var apiErr *codearts.APIError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, codeartssim.CodeIAMDenied, apiErr.ErrorCode)
	require.ErrorContains(t, err, "project "+sim.Projects()[0]+", page 1")
	require.Equal(t, 100, n, "the first page was reported before the 403")
}

func TestDiscoverRetriesAnOutageUntilCancelled(t *testing.T) {
	sim, c := setup(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 5, Disabled: 1}), codeartssim.WithOutage(true))
	done := make(chan error, 1)
	go func() {
		_, err := discover.Run(t.Context(), discover.Config{API: c, Projects: sim.Projects(), Policy: fastPolicy}, func(discover.Job) error { return nil })
		done <- err
	}()
	require.Eventually(t, func() bool { return sim.Stats().ByStatus[http.StatusServiceUnavailable] >= 5 }, 10*time.Second, time.Millisecond)
	sim.SetOutage(false)
	require.NoError(t, <-done, "the outage ended; the same page was read")
}

// pagesFromOne is an API whose lists count pages from 1 and refuse page 0
// with a 400, which the simulator does not do.
type pagesFromOne struct {
	discover.API
	jobs []codearts.JobSummary
}

func (a pagesFromOne) ListProjectJobs(_ context.Context, _ string, index, size int) (codearts.Page, error) {
	if index == 0 {
		return codearts.Page{}, &codearts.APIError{StatusCode: 400, ErrorCode: "CB.00060200", ErrorMsg: "page_index must be 1 or more"}
	}
	from := min((index-1)*size, len(a.jobs))
	return codearts.Page{Jobs: a.jobs[from:min(from+size, len(a.jobs))], Total: -1}, nil
}

func TestDiscoverPagesFromOneWhenZeroIsRefused(t *testing.T) {
	api := pagesFromOne{}
	var want []string
	for i := range 25 {
		id := string(rune('a'+i%26)) + "0123456789abcdef0123456789abcde"
		api.jobs = append(api.jobs, codearts.JobSummary{ID: id, Disabled: i%2 == 0})
		if i%2 == 0 {
			want = append(want, id)
		}
	}
	ids, p := collect(t, discover.Config{API: api, Projects: []string{"p"}, PageSize: 10, Policy: fastPolicy})
	require.Equal(t, want, ids)
	require.Equal(t, 3, p.Pages, "pages 1, 2 and the short page 3")
}

// State reads run several at a time; the jobs still come out in list
// order, and a 503 among them is retried, not skipped.
func TestDiscoverReadsStatesConcurrentlyInOrder(t *testing.T) {
	sim, c := setup(t, codeartssim.WithJobs(codeartssim.JobSeed{Projects: 3, Jobs: 600, Disabled: 0.5, Seed: 17}),
		codeartssim.WithLatency(time.Millisecond, time.Millisecond))
	sim.ScriptReads(10, codeartssim.StandardOutcome(http.StatusServiceUnavailable), codeartssim.BackendThrottle)
	var got []discover.Job
	p, err := discover.Run(t.Context(), discover.Config{API: c, AllProjects: true, Details: true, StateReads: 16, Policy: fastPolicy},
		func(j discover.Job) error {
			got = append(got, j)
			return nil
		})
	require.NoError(t, err)
	var want []string
	for _, j := range sim.Jobs() {
		if j.Disabled {
			want = append(want, j.ID)
		}
	}
	require.Len(t, got, 300)
	for i, j := range got {
		require.Equal(t, want[i], j.ID, "list order")
		require.NotEmpty(t, j.DisabledBy)
		require.False(t, j.DisabledAt.IsZero())
	}
	require.Equal(t, 300, p.StateReads)
	require.GreaterOrEqual(t, p.Retries, 2)
}
