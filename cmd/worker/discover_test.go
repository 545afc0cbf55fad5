package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/discover"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// discoverEnv is NATS and a simulator holding jobs, with the credentials
// in the environment as an operator would have them.
func discoverEnv(t *testing.T, seed codeartssim.JobSeed, opts ...codeartssim.Option) (*testenv.Env, []string) {
	t.Helper()
	env, nats := toolEnv(t, testenv.Options{Sim: append([]codeartssim.Option{codeartssim.WithJobs(seed)}, opts...)})
	t.Setenv("HUAWEICLOUD_SDK_AK", testenv.AK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testenv.SK)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", testenv.ProjectID)
	return env, nats
}

func TestDiscoverPrintsTheDisabledIDs(t *testing.T) {
	env, _ := discoverEnv(t, codeartssim.JobSeed{Projects: 3, Jobs: 500, Disabled: 0.3, Seed: 2},
		codeartssim.WithListShape(codeartssim.ShapeResult))
	env.Sim.ScriptReads(3, codeartssim.StandardOutcome(http.StatusServiceUnavailable))
	args := []string{"discover", "--endpoint", env.Sim.URL(), "--page-size", "33", "--backoff-initial", "1ms"}
	for _, p := range env.Sim.Projects() {
		args = append(args, "--project-id", p)
	}
	r := cli(t, "", args...)
	require.Zero(t, r.code, r.err)
	require.Equal(t, strings.Join(env.Sim.DisabledJobs(), "\n")+"\n", r.out)
	require.Contains(t, r.err, "discover: 150 disabled of 500 jobs (3 lists, ")
	require.Regexp(t, `, [1-9]\d* retries, 0 throttled\) in `, r.err, "the 503 was retried")
	require.NotContains(t, r.err, testenv.SK)

	// --json records, with the state read (--details).
	r = cli(t, "", "discover", "--endpoint", env.Sim.URL(), "--all-projects", "--details", "--json", "--name", "build-0000?", "-q")
	require.Zero(t, r.code, r.err)
	var got []discover.Job
	for line := range strings.Lines(r.out) {
		var j discover.Job
		require.NoError(t, json.Unmarshal([]byte(line), &j))
		got = append(got, j)
	}
	var want []discover.Job
	for _, j := range env.Sim.Jobs() {
		if j.Disabled && strings.HasPrefix(j.Name, "build-0000") {
			want = append(want, discover.Job{ID: j.ID, ProjectID: j.ProjectID, Name: j.Name, Creator: j.Creator,
				DisabledBy: j.DisabledBy, DisabledReason: j.DisabledReason, DisabledAt: j.DisabledAt.UTC()})
		}
	}
	require.NotEmpty(t, want)
	require.Equal(t, want, got)
}

func TestDiscoverFlagErrorsNameTheFlag(t *testing.T) {
	discoverEnv(t, codeartssim.JobSeed{Projects: 1, Jobs: 1})
	for _, tt := range []struct {
		give []string
		want string
	}{
		{nil, "no project: give --project-id"},
		{[]string{"--all-projects", "--project-id", "p"}, "project-id and all-projects"},
		{[]string{"--all-projects", "--page-size", "101"}, "page-size: 101 is not 1 to 100"},
		{[]string{"--all-projects", "--disabled-after", "yesterday"}, `disabled-after: "yesterday" is neither`},
		{[]string{"--all-projects", "--name", "["}, "name: name pattern"},
		{[]string{"--all-projects", "--campaign", "c"}, "campaign: only with --enqueue"},
		{[]string{"--all-projects", "--enqueue", "--campaign", "a b"}, "campaign: campaign \"a b\""},
	} {
		r := cli(t, "", append([]string{"discover"}, tt.give...)...)
		require.Equal(t, 1, r.code, tt.give)
		require.Contains(t, r.err, tt.want, tt.give)
	}
}

func TestDiscoverEnqueuesACampaign(t *testing.T) {
	env, nats := discoverEnv(t, codeartssim.JobSeed{Projects: 2, Jobs: 300, Disabled: 0.5, Seed: 4})
	args := withFlags([]string{"discover"}, nats, "--endpoint", env.Sim.URL(), "--all-projects", "--enqueue",
		"--campaign", "outage-42", "--reason", "INC-42", "--json", "-q")
	r := cli(t, "", args...)
	require.Zero(t, r.code, r.err)
	s := parseEnqueueSummary(t, r)
	require.EqualValues(t, 150, s.Published)
	require.NotNil(t, s.Campaign)
	require.Equal(t, int64(150), s.Campaign.Size)

	want := map[string]bool{}
	for _, id := range env.Sim.DisabledJobs() {
		want[id] = true
	}
	stored := storedRequests(t, env)
	require.Len(t, stored, 150)
	for _, m := range stored {
		require.True(t, want[m.req.JobID])
		require.Equal(t, "outage-42", m.req.Campaign)
		require.Equal(t, "INC-42", m.req.Reason)
		require.Equal(t, "worker discover", m.req.RequestedBy)
	}
	c, err := producer.ReadCampaign(t.Context(), env.Conn.JS, env.Conn.Config().Stream, "outage-42")
	require.NoError(t, err)
	require.Equal(t, int64(150), c.Size)
	require.WithinDuration(t, time.Now(), c.StartedAt, time.Minute)

	// A rerun within the duplicate window stores nothing and adds nothing.
	r = cli(t, "", args...)
	require.Zero(t, r.code, r.err)
	s = parseEnqueueSummary(t, r)
	require.EqualValues(t, 150, s.Duplicates)
	require.Equal(t, int64(150), s.Campaign.Size)
	require.Equal(t, 2, s.Campaign.Runs)
}

func TestEnqueueCampaign(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{})
	a, b, c := seqJobID("a", 1), seqJobID("b", 2), seqJobID("c", 3)
	input := a + "\n" + `{"job_id":"` + b + `","campaign":"spring"}` + "\n" + `{"job_id":"` + c + `","campaign":"other"}` + "\n"
	r := cli(t, input, withFlags(enqueueCmd, nats, "--file", "-", "--campaign", "spring")...)
	require.Equal(t, exitInvalid, r.code, r.err)
	require.Contains(t, r.err, `invalid line 3: campaign "other" is not --campaign "spring"`)
	require.Contains(t, r.out, "campaign    spring: 2 requests since ")
	stored := storedRequests(t, env)
	require.Len(t, stored, 2)
	for _, m := range stored {
		require.Equal(t, "spring", m.req.Campaign)
	}
}

// The round trip the issue asks for: discover → enqueue → run with
// --verify → report. 3,000 disabled jobs of 10,000 in 7 projects are
// recovered and verified, the simulator's truth agrees job by job, and the
// report's totals equal the streams' records.
func TestCampaignRoundTrip(t *testing.T) {
	env, nats := discoverEnv(t, codeartssim.JobSeed{Projects: 7, Jobs: 10_000, Disabled: 0.3, Seed: 21},
		codeartssim.WithListShape(codeartssim.ShapeResult))
	disabled := env.Sim.DisabledJobs()
	require.Len(t, disabled, 3000)
	// One job refuses: it must end not_recovered, and the report say so.
	refusing := disabled[1234]
	env.Sim.Refuse(refusing, true)

	r := cli(t, "", withFlags([]string{"discover"}, nats, "--endpoint", env.Sim.URL(), "--all-projects", "--page-size", "97",
		"--enqueue", "--campaign", "round-trip", "--json", "-q")...)
	require.Zero(t, r.code, r.err)
	require.EqualValues(t, 3000, parseEnqueueSummary(t, r).Published)

	rec := testenv.NewRecorder()
	cfg := worker.Config{Concurrency: 32, Verify: true, TriesPerDelivery: 2, Observer: rec, DrainTimeout: 10 * time.Second,
		Backoff: retry.Policy{Initial: time.Millisecond, Max: 10 * time.Millisecond, NakInitial: 50 * time.Millisecond, NakMax: 100 * time.Millisecond}}
	run := env.Start(env.Pool(nil, cfg))
	testenv.Eventually(t, 120*time.Second, func() bool { return rec.Terminal() >= 3000 }, "terminal %d of 3000", rec.Terminal)
	run.Stop(t)

	r = cli(t, "", withFlags([]string{"report"}, nats, "--campaign", "round-trip", "--json", "--jobs")...)
	require.Zero(t, r.code, r.err)
	var rep admin.CampaignReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &rep))
	require.Equal(t, int64(3000), rep.Enqueued)
	require.Equal(t, int64(2999), rep.Recovered)
	require.Equal(t, int64(2999), rep.Verified)
	require.Equal(t, int64(1), rep.DeadLettered)
	require.Equal(t, []admin.ReasonCount{{Reason: worker.ReasonNotRecovered, Count: 1}}, rep.ByReason)
	require.Zero(t, rep.InFlight)
	require.Len(t, rep.Jobs, 3000)

	// The simulator's truth, job by job.
	for _, j := range rep.Jobs {
		got, ok := env.Sim.Job(j.JobID)
		require.True(t, ok)
		if j.JobID == refusing {
			require.Equal(t, worker.OutcomeDeadLettered, j.Outcome)
			require.True(t, got.Disabled)
			continue
		}
		require.Equal(t, worker.OutcomeRecovered, j.Outcome, j.JobID)
		require.True(t, j.Verified)
		require.False(t, got.Disabled, "job %s enabled", j.JobID)
	}
	require.Equal(t, []string{refusing}, env.Sim.DisabledJobs())

	// The report's totals equal the streams' records.
	results := env.Results()
	require.Len(t, results, 3000)
	dls := env.DeadLetters()
	require.Len(t, dls, 1)
	require.Equal(t, "round-trip", dls[0].Campaign)

	r = cli(t, "", withFlags([]string{"report"}, nats, "--campaign", "round-trip", "--csv")...)
	require.Zero(t, r.code, r.err)
	require.Equal(t, 3001, strings.Count(r.out, "\n"), "a header and one row per job")
	r = cli(t, "", withFlags([]string{"report"}, nats, "--campaign", "round-trip", "--strict")...)
	require.Equal(t, 3, r.code)
	require.Contains(t, r.out, "not_recovered")
}

// A campaign's dead letter replayed (worker dlq replay) keeps its campaign
// and counts once, with its final outcome; the campaign's size does not
// grow. The same job enqueued in a second campaign within the duplicate
// window is that campaign's request, not a duplicate dropped into the
// first.
func TestCampaignReplayAndSecondCampaign(t *testing.T) {
	env, nats := discoverEnv(t, codeartssim.JobSeed{Projects: 1, Jobs: 20, Disabled: 0.5, Seed: 5})
	disabled := env.Sim.DisabledJobs()
	require.Len(t, disabled, 10)
	refusing := disabled[3]
	env.Sim.Refuse(refusing, true)

	r := cli(t, "", withFlags([]string{"enqueue", "--campaign", "first"}, nats, disabled...)...)
	require.Zero(t, r.code, r.err)
	rec := testenv.NewRecorder()
	cfg := worker.Config{Concurrency: 4, Verify: true, TriesPerDelivery: 2, Observer: rec, DrainTimeout: 10 * time.Second,
		Backoff: retry.Policy{Initial: time.Millisecond, Max: 10 * time.Millisecond, NakInitial: 50 * time.Millisecond, NakMax: 100 * time.Millisecond}}
	run := env.Start(env.Pool(nil, cfg))
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Terminal() >= 10 }, "terminal %d of 10", rec.Terminal)

	report := func(name string) admin.CampaignReport {
		t.Helper()
		r := cli(t, "", withFlags([]string{"report"}, nats, "--campaign", name, "--json")...)
		require.Zero(t, r.code, r.err)
		var rep admin.CampaignReport
		require.NoError(t, json.Unmarshal([]byte(r.out), &rep))
		return rep
	}
	rep := report("first")
	require.EqualValues(t, 9, rep.Recovered)
	require.EqualValues(t, 1, rep.DeadLettered)

	// The job can be enabled now: replay its dead letter.
	env.Sim.Refuse(refusing, false)
	r = cli(t, "", withFlags([]string{"dlq", "replay", "--reason", worker.ReasonNotRecovered}, nats)...)
	require.Zero(t, r.code, r.err)
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Terminal() >= 11 }, "terminal %d of 11", rec.Terminal)
	testenv.Eventually(t, 10*time.Second, func() bool { return report("first").Recovered == 10 }, "the replayed job's result")
	rep = report("first")
	require.EqualValues(t, 10, rep.Enqueued, "a replay adds nothing to the campaign's size")
	require.EqualValues(t, 10, rep.Recovered)
	require.EqualValues(t, 10, rep.Verified)
	require.Zero(t, rep.DeadLettered, "the replayed job counts once, with its final outcome")
	require.Empty(t, rep.ByReason)
	require.EqualValues(t, 1, rep.Repeated)
	require.Zero(t, rep.InFlight)
	job, ok := env.Sim.Job(refusing)
	require.True(t, ok)
	require.False(t, job.Disabled)

	// The same job in a second campaign, within the duplicate window.
	r = cli(t, "", withFlags([]string{"enqueue", "--campaign", "second", "--json"}, nats, disabled[0])...)
	require.Zero(t, r.code, r.err)
	sum := parseEnqueueSummary(t, r)
	require.EqualValues(t, 1, sum.Published)
	require.Zero(t, sum.Duplicates)
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Terminal() >= 12 }, "terminal %d of 12", rec.Terminal)
	run.Stop(t)
	testenv.Eventually(t, 10*time.Second, func() bool { return report("second").InFlight == 0 }, "the second campaign's result")
	second := report("second")
	require.EqualValues(t, 1, second.Enqueued)
	require.EqualValues(t, 1, second.Recovered)
	require.EqualValues(t, 10, report("first").Recovered, "the first campaign unchanged")
}
