package retry_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// The fleet's hold of a region: who opens or pauses holds the fleet and
// probes for it; an answer that closes or resumes clears it for all; the
// prober's role passes on when its replica is gone or has nothing to probe
// with.
func TestNextHold(t *testing.T) {
	breaker := &retry.FleetHold{Kind: retry.HoldBreaker, Reason: "most API calls fail", Prober: "a"}
	pause := &retry.FleetHold{Kind: retry.HoldPause, Reason: "401", Prober: "a"}
	opened := retry.HoldEvent{Kind: retry.HoldBreaker, Held: true, Reason: "most API calls fail"}
	closed := retry.HoldEvent{Kind: retry.HoldBreaker}
	paused := retry.HoldEvent{Kind: retry.HoldPause, Held: true, Reason: "401"}
	resumed := retry.HoldEvent{Kind: retry.HoldPause}
	yes := func(string) bool { return true }
	no := func(string) bool { return false }
	only := func(who string) func(string) bool { return func(n string) bool { return n == who } }
	tests := []struct {
		name        string
		give        *retry.FleetHold
		giveMe      string
		giveEvents  []retry.HoldEvent
		giveAlive   func(string) bool
		giveWaiting func(string) bool
		want        *retry.FleetHold
	}{
		{name: "nothing happens", giveMe: "b", giveAlive: yes, want: nil},
		{name: "who opens holds the fleet and probes", giveMe: "b", giveEvents: []retry.HoldEvent{opened}, giveAlive: yes,
			want: &retry.FleetHold{Kind: retry.HoldBreaker, Reason: "most API calls fail", Prober: "b"}},
		{name: "a second opener follows the first", give: breaker, giveMe: "b", giveEvents: []retry.HoldEvent{opened}, giveAlive: yes, want: breaker},
		{name: "a pause outranks an open breaker", give: breaker, giveMe: "b", giveEvents: []retry.HoldEvent{paused}, giveAlive: yes,
			want: &retry.FleetHold{Kind: retry.HoldPause, Reason: "401", Prober: "b"}},
		{name: "an open breaker does not weaken a pause", give: pause, giveMe: "b", giveEvents: []retry.HoldEvent{opened}, giveAlive: yes, want: pause},
		{name: "a closed breaker clears the fleet's", give: breaker, giveMe: "b", giveEvents: []retry.HoldEvent{closed}, giveAlive: yes, want: nil},
		{name: "a closed breaker does not resume a pause", give: pause, giveMe: "a", giveEvents: []retry.HoldEvent{closed}, giveAlive: yes, want: pause},
		{name: "a resume clears any hold", give: breaker, giveMe: "b", giveEvents: []retry.HoldEvent{resumed}, giveAlive: yes, want: nil},
		{name: "events apply in order", giveMe: "b", giveEvents: []retry.HoldEvent{opened, closed, paused}, giveAlive: yes,
			want: &retry.FleetHold{Kind: retry.HoldPause, Reason: "401", Prober: "b"}},
		{name: "a prober gone: the next replica probes", give: breaker, giveMe: "b", giveAlive: no,
			want: &retry.FleetHold{Kind: retry.HoldBreaker, Reason: "most API calls fail", Prober: "b"}},
		{name: "a prober that left: the next replica probes", give: &retry.FleetHold{Kind: retry.HoldPause, Reason: "401"}, giveMe: "b", giveAlive: yes,
			want: &retry.FleetHold{Kind: retry.HoldPause, Reason: "401", Prober: "b"}},
		{name: "a prober with nothing to probe with hands over to one with requests", give: breaker, giveMe: "b", giveAlive: yes, giveWaiting: only("b"),
			want: &retry.FleetHold{Kind: retry.HoldBreaker, Reason: "most API calls fail", Prober: "b"}},
		{name: "a prober with requests keeps the role", give: breaker, giveMe: "b", giveAlive: yes, giveWaiting: yes, want: breaker},
		{name: "nobody waiting: the prober keeps the role", give: breaker, giveMe: "b", giveAlive: yes, giveWaiting: no, want: breaker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var was retry.FleetHold
			if tt.give != nil {
				was = *tt.give
			}
			got := retry.NextHold(tt.give, retry.HoldInput{Me: tt.giveMe, Events: tt.giveEvents, Alive: tt.giveAlive, Waiting: tt.giveWaiting})
			require.Equal(t, tt.want, got)
			if tt.give != nil {
				require.Equal(t, was, *tt.give, "the hold read is not changed in place")
			}
		})
	}
}

// The hold reads back what it writes, and each replica's view says whether
// it probes.
func TestFleetHoldView(t *testing.T) {
	h := &retry.FleetHold{Kind: retry.HoldPause, Reason: "401", Prober: "a"}
	b, err := json.Marshal(h)
	require.NoError(t, err)
	require.JSONEq(t, `{"kind":"pause","reason":"401","prober":"a"}`, string(b))
	var back retry.FleetHold
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, *h, back)
	require.Equal(t, retry.SharedHold{Known: true, Kind: retry.HoldPause, Reason: "401", Probe: true}, h.View("a"))
	require.Equal(t, retry.SharedHold{Known: true, Kind: retry.HoldPause, Reason: "401"}, h.View("b"))
	require.Equal(t, retry.SharedHold{Known: true}, (*retry.FleetHold)(nil).View("a"))
}

// A breaker the fleet holds open: a follower admits nothing and fetches
// nothing to probe with, however long; the prober probes a wait after it
// learned, even with no request of its own that failed; a success anywhere
// closes it; a replica that cannot read the fleet decides alone again.
func TestBreakerFollowsTheFleet(t *testing.T) {
	cfg := retry.BreakerConfig{Open: time.Second, MaxOpen: time.Second}
	follower := retry.NewBreaker(cfg)
	require.Equal(t, retry.BreakerClosed, follower.FleetOpen(t0, false))
	require.Equal(t, retry.BreakerOpen, follower.State())
	for _, at := range []time.Duration{0, time.Second, time.Hour} {
		require.Equal(t, retry.Admission{}, follower.Admit(t0.Add(at), "j"), "a follower never probes (%v)", at)
		require.Zero(t, follower.Fetch(t0.Add(at)), "nor fetches to probe")
	}
	require.Equal(t, retry.BreakerOpen, follower.FleetClosed())
	require.Equal(t, retry.Admission{Go: true}, follower.Admit(t0.Add(time.Hour), "j"), "closed by the fleet")

	prober := retry.NewBreaker(cfg)
	prober.FleetOpen(t0, true)
	require.Equal(t, retry.Admission{Wait: time.Second}, prober.Admit(t0, "j"))
	require.Equal(t, 1, prober.Fetch(t0.Add(time.Second)), "a prober without a waiting request fetches one to probe with")
	require.Equal(t, retry.Admission{Go: true, Probe: true}, prober.Admit(t0.Add(time.Second), "j"))
	prober.Record(t0.Add(time.Second), retry.Up, true)
	require.Equal(t, retry.BreakerClosed, prober.State(), "its probe passed")

	alone := retry.NewBreaker(cfg)
	alone.FleetOpen(t0, false)
	alone.Alone()
	require.Equal(t, retry.Admission{Go: true, Probe: true}, alone.Admit(t0.Add(time.Second), "j"), "the fleet unknown: it probes itself")
}

// A pause the fleet holds: a follower admits nothing, however long, and
// resumes when the fleet does; the prober probes a Probe wait after it
// learned; the fleet's pause is a new pause here (the consumer pause and the
// one error line), once.
func TestPauseFollowsTheFleet(t *testing.T) {
	cfg := retry.PauseConfig{Probe: time.Second, MaxProbe: time.Second, Lease: time.Minute}
	follower := retry.NewPause(cfg)
	c := follower.FleetPaused(t0, "401", false)
	require.Equal(t, retry.PauseChange{Action: retry.PauseNow, Until: t0.Add(time.Minute), New: true, Changed: true}, c)
	require.Equal(t, retry.PauseChange{Changed: true}, follower.FleetPaused(t0, "401", false), "the same pause again is nothing new")
	paused, reason := follower.Paused()
	require.True(t, paused)
	require.Equal(t, "401", reason)
	for _, at := range []time.Duration{0, time.Second, time.Hour} {
		require.Equal(t, retry.Admission{}, follower.Admit(t0.Add(at), "j"), "a follower never probes (%v)", at)
	}
	c = follower.FleetResumed()
	require.Equal(t, retry.ResumeNow, c.Action)
	require.Equal(t, "401", c.Was)
	require.Equal(t, retry.Admission{Go: true}, follower.Admit(t0.Add(time.Hour), "j"))
	require.Equal(t, retry.PauseChange{}, follower.FleetResumed(), "not paused: nothing to resume")

	prober := retry.NewPause(cfg)
	prober.FleetPaused(t0, "401", true)
	require.Equal(t, retry.Admission{Wait: time.Second}, prober.Admit(t0, "j"))
	require.Equal(t, retry.Admission{Go: true, Probe: true}, prober.Admit(t0.Add(time.Second), "j"))
	require.Equal(t, retry.ResumeNow, prober.Record(t0.Add(time.Second), "j", retry.Success, "", true).Action)

	alone := retry.NewPause(cfg)
	alone.FleetPaused(t0, "401", false)
	alone.Alone()
	require.Equal(t, retry.Admission{Go: true, Probe: true}, alone.Admit(t0.Add(time.Second), "j"), "the fleet unknown: it probes itself")
}
