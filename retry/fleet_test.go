package retry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFleetPolicy(t *testing.T) {
	t.Parallel()
	capped := FleetPolicy{Cap: 300, Min: 1, Decrease: 0.5, Increase: 15, Window: time.Second, Cooldown: time.Second}
	open := FleetPolicy{Min: 1, Decrease: 0.5, Window: time.Second, Cooldown: time.Second}
	tests := []struct {
		name string
		give FleetRate
		do   func(FleetRate) FleetRate
		want FleetRate
	}{
		{"a capped fleet starts at its cap", FleetRate{}, func(FleetRate) FleetRate { return capped.Start() }, FleetRate{300, 300, 300, 0, 0, false}},
		{"an open fleet starts slow", FleetRate{}, func(FleetRate) FleetRate { return open.Start() }, FleetRate{100, 100, 0, 0, 0, true}},
		{"slow start doubles", FleetRate{100, 100, 0, 0, 0, true}, open.Raise, FleetRate{200, 200, 0, 0, 0, true}},
		{"a slow start's first cut goes no lower than two doublings back", FleetRate{800, 800, 0, 0, 0, true}, func(r FleetRate) FleetRate { return open.Cut(r, 800, 127) }, FleetRate{200, 400, 0, 0, 400, false}},
		{"the first cut ends slow start", FleetRate{400, 400, 0, 0, 0, true}, func(r FleetRate) FleetRate { return open.Cut(r, 380, 300) }, FleetRate{291, 300, 0, 0, 300, false}},
		{"a slow start's first cut goes to just under what the API served", FleetRate{100, 100, 0, 0, 0, true}, func(r FleetRate) FleetRate { return open.Cut(r, 900, 300) }, FleetRate{291, 450, 0, 0, 450, false}},
		{"a cut of a capped fleet takes a tenth off", FleetRate{300, 300, 0, 0, 0, false}, func(r FleetRate) FleetRate { return capped.Cut(r, 0, 0) }, FleetRate{270, 300, 300, 0, 300, false}},
		{"a cut starts from the limit, not from a partial measure", FleetRate{300, 300, 0, 0, 0, false}, func(r FleetRate) FleetRate { return capped.Cut(r, 200, 0) }, FleetRate{270, 300, 300, 0, 300, false}},
		{"under a cap a tenth off, whatever the API served", FleetRate{300, 300, 300, 0, 0, false}, func(r FleetRate) FleetRate { return capped.Cut(r, 300, 295) }, FleetRate{270, 300, 300, 0, 300, false}},
		{"a cut of an open fleet halves it", FleetRate{300, 300, 0, 0, 0, false}, func(r FleetRate) FleetRate { return open.Cut(r, 0, 0) }, FleetRate{150, 300, 0, 0, 300, false}},
		{"the first cut of an open fleet measures its ceiling", FleetRate{}, func(r FleetRate) FleetRate { return open.Cut(r, 400, 0) }, FleetRate{200, 400, 0, 0, 400, false}},
		{"a later cut moves the ceiling to where the quota was met", FleetRate{220, 400, 0, 0, 0, false}, func(r FleetRate) FleetRate { return open.Cut(r, 0, 0) }, FleetRate{110, 220, 0, 0, 220, false}},
		{"a cut with nothing measured goes to the floor", FleetRate{}, func(r FleetRate) FleetRate { return open.Cut(r, 0, 0) }, FleetRate{1, 1, 0, 0, 1, false}},
		{"no lower than just under what the API served", FleetRate{100, 100, 0, 0, 0, false}, func(r FleetRate) FleetRate { return open.Cut(r, 100, 97) }, FleetRate{94.09, 97, 0, 0, 100, false}},
		{"the ceiling is what the API served", FleetRate{126, 140, 0, 0, 0, false}, func(r FleetRate) FleetRate { return open.Cut(r, 126, 100) }, FleetRate{97, 100, 0, 0, 126, false}},
		{"never below the floor", FleetRate{1.5, 300, 0, 0, 0, false}, func(r FleetRate) FleetRate { return open.Cut(r, 0, 0) }, FleetRate{1, 1.5, 0, 0, 1.5, false}},
		{"a raise closes half the gap to the ceiling", FleetRate{150, 300, 0, 0, 0, false}, capped.Raise, FleetRate{225, 300, 300, 0, 0, false}},
		{"at least Increase", FleetRate{290, 300, 0, 0, 0, false}, capped.Raise, FleetRate{300, 300, 300, 0, 0, false}},
		{"the default increase is a twentieth of the ceiling", FleetRate{390, 400, 0, 0, 0, false}, open.Raise, FleetRate{400, 400, 0, 0, 0, false}},
		{"the default increase, near the ceiling", FleetRate{370, 400, 0, 0, 0, false}, open.Raise, FleetRate{390, 400, 0, 0, 0, false}},
		{"at the ceiling: probe above it gently", FleetRate{400, 400, 0, 0, 0, false}, open.Raise, FleetRate{412, 412, 0, 0.06, 0, false}},
		{"each probe without a throttle doubles the step", FleetRate{412, 412, 0, 0.06, 0, false}, open.Raise, FleetRate{436.72, 436.72, 0, 0.12, 0, false}},
		{"the step stops doubling at the whole limit", FleetRate{100, 100, 0, 1, 0, false}, open.Raise, FleetRate{200, 200, 0, 1, 0, false}},
		{"a raise toward the ceiling does not probe", FleetRate{150, 300, 0, 0.5, 0, false}, open.Raise, FleetRate{225, 300, 0, 0, 0, false}},
		{"a cut resets the probe", FleetRate{400, 400, 0, 0.5, 0, false}, func(r FleetRate) FleetRate { return open.Cut(r, 0, 0) }, FleetRate{200, 400, 0, 0, 400, false}},
		{"near where the quota was met the probe stays gentle", FleetRate{310, 310, 0, 0.03, 300, false}, open.Raise, FleetRate{319.3, 319.3, 0, 0.03, 300, false}},
		{"a quarter over it the probe doubles again", FleetRate{370, 370, 0, 0.03, 300, false}, open.Raise, FleetRate{381.1, 381.1, 0, 0.06, 300, false}},
		{"a capped fleet probes up to its cap", FleetRate{200, 200, 0, 0, 0, false}, capped.Raise, FleetRate{206, 206, 300, 0.06, 0, false}},
		{"no limit stays no limit", FleetRate{}, open.Raise, FleetRate{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.do(tt.give))
		})
	}
	require.False(t, capped.Raisable(FleetRate{300, 300, 0, 0, 0, false}), "at the cap")
	require.True(t, capped.Raisable(FleetRate{150, 300, 0, 0, 0, false}))
	require.False(t, open.Raisable(FleetRate{}), "no limit")
	require.True(t, open.Raisable(FleetRate{400, 400, 0, 0, 0, false}), "an open fleet keeps probing")
	require.InDelta(t, 100, FleetRate{Limit: 300}.Share(3), 1e-9)
	require.InDelta(t, 300, FleetRate{Limit: 300}.Share(0), 1e-9, "at least one replica")
	require.Zero(t, FleetRate{}.Share(3), "no limit")
	require.Zero(t, FleetRate{Limit: 100, Slow: true}.Share(1), "a lone replica in slow start has no limit")
	require.InDelta(t, 50, FleetRate{Limit: 100, Slow: true}.Share(2), 1e-9, "replicas together share the slow start")
	require.Equal(t, 250*time.Millisecond, open.RaiseAfter(FleetRate{Limit: 100, Slow: true}))
	require.Equal(t, time.Second, open.RaiseAfter(FleetRate{Limit: 100}))
}

// A Limiter in a fleet paces to the share it is given and reports throttles and
// successes to the fleet instead of cutting or raising its own rate.
func TestLimiterInAFleet(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	l := newLimiter(t, LimiterConfig{Clock: clock.Now})
	f := &fleetSpy{}
	l.JoinFleet(f)
	l.SetShare(50)
	require.InDelta(t, 50, l.Rate(), 1e-9)
	l.Throttled(0)
	require.InDelta(t, 50, l.Rate(), 1e-9, "the fleet cuts, not the replica")
	l.Succeeded()
	clock.Add(10 * time.Second)
	l.Succeeded()
	require.InDelta(t, 50, l.Rate(), 1e-9, "nor raises")
	require.Equal(t, 1, f.throttled)
	require.Equal(t, 2, f.succeeded)
	l.SetShare(0)
	require.Zero(t, l.Rate(), "no limit")
}

type fleetSpy struct{ throttled, succeeded int }

func (f *fleetSpy) Throttled() { f.throttled++ }
func (f *fleetSpy) Succeeded() { f.succeeded++ }

// After a throttle storm has cut an open fleet to its floor, a window of successes at a
// time brings it back to the API's capacity within seconds: the probe above the ceiling
// grows with each raise that meets no throttle (it took over a thousand raises when each
// added 3 % of a collapsed ceiling), and still starts at 3 %, so a steady quota is found
// again only a little over.
func TestFleetClimbsBackAfterAStorm(t *testing.T) {
	t.Parallel()
	open := FleetPolicy{Min: 1, Decrease: 0.5, Window: time.Second, Cooldown: time.Second}
	r := FleetRate{Limit: 1000, Ceiling: 1000}
	for range 12 { // a storm: 60 % throttled, one cut per Cooldown
		r = open.Cut(r, r.Limit, 0.4*r.Limit)
	}
	require.InDelta(t, 1, r.Limit, 1e-9, "the storm cut the fleet to its floor")
	raises := 0
	for r.Limit < 1000 {
		r = open.Raise(r)
		raises++
		require.LessOrEqual(t, raises, 20, "still at %.1f req/s after %d windows of successes", r.Limit, raises)
	}
	// A steady quota at 500: the first raise past it overshoots by a step, and after the
	// cut the probe starts small again.
	r = open.Cut(FleetRate{Limit: 520, Ceiling: 520, Probe: 0.5}, 520, 500)
	require.Equal(t, FleetRate{Limit: 485, Ceiling: 500, Met: 520}, r, "just under what the API served")
	r = open.Raise(r)
	require.InDelta(t, 500, r.Limit, 1e-9)
	require.InDelta(t, 515, open.Raise(r).Limit, 1e-9)
	// and stays gentle near it: the API's burst can delay the next throttle, and
	// doubling steps meanwhile would overshoot by half.
	for range 3 {
		r = open.Raise(r)
	}
	require.InDelta(t, 500*1.03*1.03*1.03, r.Limit, 1e-6)
}

// A fleet's cut goes no lower than just under what the API served: every call it
// answered otherwise than with a throttle (failures and client errors spent quota too),
// not only the successes.
func TestLimiterRatesCountWhatTheAPIServed(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	l := newLimiter(t, LimiterConfig{Clock: clock.Now})
	l.JoinFleet(&fleetSpy{})
	for range 10 {
		require.NoError(t, l.Wait(t.Context()))
	}
	for range 3 {
		l.Throttled(0)
	}
	l.Succeeded() // 1 success, 6 failures or client errors, 3 throttles
	clock.Add(time.Second)
	admitted, served := l.Rates()
	require.InDelta(t, 10, admitted, 1e-9)
	require.InDelta(t, 7, served, 1e-9)
}
