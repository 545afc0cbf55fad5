package retry_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

func TestPauseOnCredentialsProbeResume(t *testing.T) {
	p := retry.NewPause(retry.PauseConfig{Probe: 2 * time.Second, MaxProbe: 5 * time.Second, Lease: time.Minute})
	c := p.Record(t0, "job-a", retry.Unauthorized, "APIG.0301", false)
	require.Equal(t, retry.PauseNow, c.Action)
	require.True(t, c.New)
	require.Equal(t, t0.Add(time.Minute), c.Until, "the consumer pause is a lease")
	paused, reason := p.Paused()
	require.True(t, paused)
	require.Equal(t, "api rejected the credentials (401 APIG.0301)", reason)

	// Nothing goes out until the probe is due; then one probe.
	require.Equal(t, retry.Admission{Wait: 2 * time.Second}, p.Admit(t0, "job-b"))
	now := t0.Add(2 * time.Second)
	require.Equal(t, retry.Admission{Go: true, Probe: true}, p.Admit(now, "job-b"))
	require.Equal(t, retry.Admission{}, p.Admit(now, "job-c"), "one probe at a time")

	// A failed probe renews the lease and backs off, up to MaxProbe.
	c = p.Record(now, "job-b", retry.Unauthorized, "APIG.0301", true)
	require.Equal(t, retry.PauseNow, c.Action)
	require.False(t, c.New)
	require.Equal(t, 4*time.Second, p.NextProbe())
	now = now.Add(4 * time.Second)
	require.True(t, p.Admit(now, "job-c").Probe)
	p.Record(now, "job-c", retry.Configuration, "APIG.0101", true)
	require.Equal(t, 5*time.Second, p.NextProbe(), "capped")

	// A success resumes.
	now = now.Add(5 * time.Second)
	require.True(t, p.Admit(now, "job-d").Probe)
	c = p.Record(now, "job-d", retry.Success, "", true)
	require.Equal(t, retry.ResumeNow, c.Action)
	require.Equal(t, "api rejected the credentials (401 APIG.0301)", c.Was)
	paused, _ = p.Paused()
	require.False(t, paused)
	require.Equal(t, retry.Admission{Go: true}, p.Admit(now, "job-e"))
}

// Calls that were in flight when the pause began answer 401 too; they say
// nothing new and must not back the probe off: only a failed probe does.
func TestPauseBurstOfUnauthorizedKeepsProbeWait(t *testing.T) {
	p := retry.NewPause(retry.PauseConfig{Probe: 2 * time.Second, MaxProbe: time.Minute})
	for i := range 64 {
		p.Record(t0, fmt.Sprintf("job-%d", i), retry.Unauthorized, "", false)
	}
	require.Equal(t, 2*time.Second, p.NextProbe(), "64 in-flight 401s leave the first probe wait")
	p.Record(t0, "probe-job", retry.Unauthorized, "", true)
	require.Equal(t, 4*time.Second, p.NextProbe(), "a failed probe doubles it")
}

// A job whose probe failed yields the next probe to one that has not tried;
// after a full period it may probe again, so probes never stop.
func TestPauseFailedProbeYields(t *testing.T) {
	p := retry.NewPause(retry.PauseConfig{Probe: time.Second, MaxProbe: time.Second})
	p.Record(t0, "job-a", retry.Unauthorized, "", false)
	now := t0.Add(time.Second)
	require.True(t, p.Admit(now, "job-a").Probe)
	p.Record(now, "job-a", retry.Unauthorized, "", true)
	now = now.Add(time.Second)
	require.Equal(t, retry.Admission{Wait: time.Second}, p.Admit(now, "job-a"), "job-a yields")
	require.True(t, p.Admit(now.Add(time.Second), "job-a").Probe, "nobody else came: job-a again")
}

// An inconclusive probe (a 5xx, a throttle) lets another go a period later
// without backing off.
func TestPauseInconclusiveProbe(t *testing.T) {
	p := retry.NewPause(retry.PauseConfig{Probe: time.Second})
	p.Record(t0, "job-a", retry.Unauthorized, "", false)
	now := t0.Add(time.Second)
	require.True(t, p.Admit(now, "job-b").Probe)
	c := p.Record(now, "job-b", retry.Transient, "", true)
	require.Equal(t, retry.Keep, c.Action)
	require.Equal(t, time.Second, p.NextProbe())
	require.Equal(t, retry.Admission{Wait: time.Second}, p.Admit(now, "job-c"))
}

// 403s: a run on distinct jobs pauses (a missing permission); a success in
// between proves the credentials and restarts the count; a job held through
// a run pause whose 403 comes again after a resume is about the job.
func TestPauseForbiddenRun(t *testing.T) {
	tests := []struct {
		name       string
		giveRun    int
		give403s   int
		giveOKAt   int // a success after this many 403s; -1 none
		wantPaused bool
	}{
		{name: "run reached", giveRun: 5, give403s: 5, giveOKAt: -1, wantPaused: true},
		{name: "run short", giveRun: 5, give403s: 4, giveOKAt: -1},
		{name: "success restarts the count", giveRun: 5, give403s: 8, giveOKAt: 4},
		{name: "one 403 with a run of one", giveRun: 1, give403s: 1, giveOKAt: -1, wantPaused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := retry.NewPause(retry.PauseConfig{ForbiddenRun: tt.giveRun})
			for i := range tt.give403s {
				if i == tt.giveOKAt {
					p.Record(t0, "ok", retry.Success, "", false)
				}
				p.Record(t0, fmt.Sprintf("job-%d", i), retry.Forbidden, "APIG.0302", false)
			}
			paused, _ := p.Paused()
			require.Equal(t, tt.wantPaused, paused)
		})
	}

	p := retry.NewPause(retry.PauseConfig{ForbiddenRun: 2})
	p.Record(t0, "job-a", retry.Forbidden, "", false)
	c := p.Record(t0, "job-b", retry.Forbidden, "", false)
	require.Equal(t, retry.PauseNow, c.Action)
	p.Hold("job-a")
	require.Equal(t, retry.ResumeNow, p.Record(t0, "job-c", retry.Success, "", true).Action)
	c = p.Record(t0, "job-a", retry.Forbidden, "", false)
	require.True(t, c.JobLevel, "held through the pause, 403 again after a resume: about the job")
	paused, _ := p.Paused()
	require.False(t, paused, "and it starts no run")
}

// Every 403 of a run is held through the pause it belongs to, at the
// moment it is recorded: a handler that reaches its verdict only after the
// pause ended (a loaded machine: the probe succeeded meanwhile) retries its
// request instead of taking the success that ended the pause for proof
// that the 403 was about the job. Found by a stress run: 1 of 30 requests
// of a granted permission dead-lettered client_error.
func TestPauseRunHeldWhenRecorded(t *testing.T) {
	p := retry.NewPause(retry.PauseConfig{ForbiddenRun: 3})
	p.Record(t0, "run-1", retry.Forbidden, "", false)
	p.Record(t0, "run-2", retry.Forbidden, "", false)
	require.Equal(t, retry.PauseNow, p.Record(t0, "run-3", retry.Forbidden, "", false).Action)
	p.Record(t0, "in-pause", retry.Forbidden, "", false) // answered while paused
	for _, job := range []string{"run-1", "run-2", "run-3", "in-pause"} {
		require.False(t, p.HeldThroughResume(job), "%s: the pause is still on", job)
	}
	require.Equal(t, retry.ResumeNow, p.Record(t0, "probe", retry.Success, "", true).Action)

	for _, job := range []string{"run-1", "run-2", "run-3", "in-pause"} {
		require.True(t, p.HeldThroughResume(job), "%s: part of the run, retried after the resume", job)
	}
	require.False(t, p.HeldThroughResume("other"), "a job outside the run is not held")
	c := p.Record(t0, "in-pause", retry.Forbidden, "", false)
	require.True(t, c.JobLevel, "its next 403 after the resume is about the job")
	require.False(t, p.HeldThroughResume("in-pause"), "judged once")
}

// Due says when this replica's probe is due: paused, not following another
// replica's probe, none out, its time come. The gate lets requests in for it
// when none waits to probe with.
func TestPauseDue(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	p := retry.NewPause(retry.PauseConfig{Probe: 2 * time.Second, MaxProbe: time.Minute})
	require.False(t, p.Due(t0), "not paused")
	p.Record(t0, "job-1", retry.Unauthorized, "APIG.0301", false)
	require.False(t, p.Due(t0.Add(time.Second)), "before the probe wait")
	require.True(t, p.Due(t0.Add(2*time.Second)), "the probe is due")
	require.True(t, p.Admit(t0.Add(2*time.Second), "job-2").Probe)
	require.False(t, p.Due(t0.Add(3*time.Second)), "a probe is out")
	p.Record(t0.Add(3*time.Second), "job-2", retry.Unauthorized, "APIG.0301", true)
	require.True(t, p.Due(t0.Add(7*time.Second)), "due again after the doubled wait")
	p.FleetPaused(t0.Add(7*time.Second), "api rejected the credentials (401 APIG.0301)", false)
	require.False(t, p.Due(t0.Add(time.Hour)), "another replica probes for the fleet")
}
