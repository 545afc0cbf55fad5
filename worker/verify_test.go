package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// drain publishes each job (with campaign c) and runs a pool with cfg
// until every request has a terminal outcome.
func drain(t *testing.T, env *testenv.Env, cfg worker.Config, rec *testenv.Recorder, campaign string, jobs []string) {
	t.Helper()
	for _, id := range jobs {
		env.Publish(fmt.Sprintf(`{"job_id":%q,"campaign":%q}`, id, campaign), id)
	}
	run := env.Start(env.Pool(nil, cfg))
	testenv.Eventually(t, 60*time.Second, func() bool { return rec.Terminal() >= len(jobs) },
		"terminal outcomes %d of %d", rec.Terminal(), len(jobs))
	run.Stop(t)
	require.Zero(t, env.Pending())
}

// --skip-enabled on a list where half the jobs are already enabled: no
// recover call for those; they end already_enabled.
func TestSkipEnabledMakesNoRecoverForEnabledJobs(t *testing.T) {
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{
		codeartssim.WithJobs(codeartssim.JobSeed{Projects: 2, Jobs: 200, Disabled: 0.5, Seed: 3}),
	}})
	var all []string
	disabled := map[string]bool{}
	for _, j := range env.Sim.Jobs() {
		all = append(all, j.ID)
		disabled[j.ID] = j.Disabled
	}
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.SkipEnabled = true
	drain(t, env, cfg, rec, "half", all)

	require.Equal(t, 100, rec.Count(worker.OutcomeAlreadyEnabled))
	require.Equal(t, 100, rec.Count(worker.OutcomeRecovered))
	st := env.Sim.Stats()
	for id, dis := range disabled {
		if dis {
			require.Equal(t, int64(1), st.Jobs[id].Calls, "disabled job %s recovered once", id)
		} else {
			require.Zero(t, st.Jobs[id].Calls, "enabled job %s: no recover call", id)
		}
	}
	require.Equal(t, int64(200), st.Reads[codeartssim.ReadDisable], "one state read per request")
	require.Empty(t, env.Sim.DisabledJobs(), "every job enabled now")
	outcomes := map[string]int{}
	for _, r := range env.Results() {
		require.Equal(t, "half", r.Campaign)
		outcomes[r.Outcome]++
		if r.Outcome == worker.OutcomeAlreadyEnabled {
			require.False(t, disabled[r.JobID])
		}
	}
	require.Equal(t, map[string]int{worker.OutcomeAlreadyEnabled: 100, worker.OutcomeRecovered: 100}, outcomes)
}

// A job the simulator refuses to enable (recover answers success, the job
// stays disabled) ends not_recovered with --verify, and recovered without.
func TestRefusingJobEndsNotRecoveredWithVerify(t *testing.T) {
	for _, tt := range []struct {
		name       string
		giveVerify bool
		wantReason string
	}{
		{"verify", true, worker.ReasonNotRecovered},
		{"no verify", false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{
				codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 20, Disabled: 1, Seed: 9}),
			}})
			var ids []string
			for _, j := range env.Sim.Jobs() {
				ids = append(ids, j.ID)
			}
			refusing := ids[3]
			env.Sim.Refuse(refusing, true)
			rec := testenv.NewRecorder()
			cfg := poolConfig(rec)
			cfg.Verify = tt.giveVerify
			cfg.TriesPerDelivery = 2
			drain(t, env, cfg, rec, "c1", ids)

			dls := env.DeadLetters()
			if tt.wantReason == "" {
				require.Empty(t, dls)
				require.Equal(t, 20, rec.Count(worker.OutcomeRecovered))
				require.Equal(t, 1, env.Sim.Recovered(refusing))
				return
			}
			require.Len(t, dls, 1)
			d := dls[0]
			require.Equal(t, refusing, d.JobID)
			require.Equal(t, worker.ReasonNotRecovered, d.Reason)
			require.Equal(t, "c1", d.Campaign)
			require.Contains(t, d.ErrorMsg, "still disabled")
			require.Equal(t, 19, rec.Count(worker.OutcomeRecovered))
			budget := env.Conn.Config().MaxDeliver * cfg.TriesPerDelivery
			require.Equal(t, budget, env.Sim.Recovered(refusing), "retried like a transient failure until the budget was spent")
			verified := 0
			for _, r := range env.Results() {
				if r.Outcome == worker.OutcomeRecovered {
					require.True(t, r.Verified, r.JobID)
					verified++
				}
			}
			require.Equal(t, 19, verified)
			got, _ := env.Sim.Job(refusing)
			require.True(t, got.Disabled)
		})
	}
}

// A try whose recover was applied but whose read back failed (a 503 on
// ShowDisable) is followed by a try that reads first: the job is enabled,
// so the request ends recovered and verified without a second recover.
// The family: a retried try must not repeat the part of the work the
// previous try finished; the other member, --skip-enabled, reads first
// anyway.
func TestFailedVerifyReadIsNotASecondRecover(t *testing.T) {
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{
		codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 10, Disabled: 1, Seed: 4}),
	}})
	var ids []string
	for _, j := range env.Sim.Jobs() {
		ids = append(ids, j.ID)
	}
	// The first three reads (whichever jobs they verify) fail.
	env.Sim.ScriptReads(1, codeartssim.StandardOutcome(503), codeartssim.StandardOutcome(503), codeartssim.StandardOutcome(503))
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Verify = true
	drain(t, env, cfg, rec, "c1", ids)

	require.Equal(t, 10, rec.Count(worker.OutcomeRecovered))
	require.Empty(t, env.DeadLetters())
	st := env.Sim.Stats()
	for _, id := range ids {
		require.Equal(t, int64(1), st.Jobs[id].Calls, "job %s recovered once", id)
	}
	require.Equal(t, int64(13), st.Reads[codeartssim.ReadDisable], "a read per job, and one more per failed read")
	for _, r := range env.Results() {
		require.True(t, r.Verified, "job %s verified", r.JobID)
	}
	require.Empty(t, env.Sim.DisabledJobs())
}
