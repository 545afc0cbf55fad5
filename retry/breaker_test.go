package retry_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// fail feeds n failures of distinct jobs at now.
func fail(b *retry.Breaker, now time.Time, n int) {
	for range n {
		b.Record(now, retry.Down, false)
	}
}

func TestBreakerOpensOnTheFailureShare(t *testing.T) {
	tests := []struct {
		name      string
		giveUp    int
		giveDown  int
		wantState retry.BreakerState
	}{
		{name: "too few calls to judge", giveDown: 9, wantState: retry.BreakerClosed},
		{name: "half of the window failed", giveUp: 10, giveDown: 10, wantState: retry.BreakerOpen},
		{name: "under half failed", giveUp: 11, giveDown: 9, wantState: retry.BreakerClosed},
		{name: "all failed", giveDown: 10, wantState: retry.BreakerOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := retry.NewBreaker(retry.BreakerConfig{})
			for range tt.giveUp {
				b.Record(t0, retry.Up, false)
			}
			fail(b, t0, tt.giveDown)
			require.Equal(t, tt.wantState, b.State())
		})
	}
}

// Throttles, cancelled calls and pausing answers say nothing about the
// API's health: a storm of them never opens the breaker.
func TestBreakerIgnoresNoVerdict(t *testing.T) {
	b := retry.NewBreaker(retry.BreakerConfig{})
	for _, c := range []retry.Class{retry.Throttled, retry.Canceled, retry.Unauthorized, retry.Configuration} {
		for range 50 {
			b.Record(t0, retry.VerdictOf(c), false)
		}
	}
	require.Equal(t, retry.BreakerClosed, b.State())
	require.Equal(t, retry.Up, retry.VerdictOf(retry.ClientError), "a 4xx shows the API is up")
	require.Equal(t, retry.Down, retry.VerdictOf(retry.Transient))
}

// Open: nothing until the wait ends, then exactly one probe; a failed probe
// doubles the wait up to MaxOpen; a successful one closes it.
func TestBreakerProbeCycle(t *testing.T) {
	b := retry.NewBreaker(retry.BreakerConfig{Open: time.Second, MaxOpen: 3 * time.Second})
	fail(b, t0, 10)
	require.Equal(t, retry.BreakerOpen, b.State())

	a := b.Admit(t0.Add(500*time.Millisecond), "job-a")
	require.Equal(t, retry.Admission{Wait: 500 * time.Millisecond}, a, "waits out the open period")
	require.Zero(t, b.Fetch(t0.Add(500*time.Millisecond)), "fetches nothing while open")

	now := t0.Add(time.Second)
	require.Equal(t, retry.Admission{Go: true, Probe: true}, b.Admit(now, "job-a"))
	require.Equal(t, retry.BreakerHalfOpen, b.State())
	require.Equal(t, retry.Admission{}, b.Admit(now, "job-b"), "one probe at a time: the others wait for its answer")

	// The probe fails: open again for twice as long.
	require.Equal(t, retry.BreakerHalfOpen, b.Record(now, retry.Down, true))
	require.Equal(t, retry.BreakerOpen, b.State())
	require.Equal(t, retry.Admission{Wait: 2 * time.Second}, b.Admit(now, "job-b"))

	// job-a failed its probe: when the next one is due, job-b probes and
	// job-a yields a period; a fresh request may be fetched to probe with.
	now = now.Add(2 * time.Second)
	require.Equal(t, retry.Admission{Wait: 2 * time.Second}, b.Admit(now, "job-a"))
	require.Equal(t, 1, b.Fetch(now), "a fresh request to probe with")
	require.Zero(t, b.Fetch(now), "one per period")
	require.Equal(t, retry.Admission{Go: true, Probe: true}, b.Admit(now, "job-b"))
	b.Record(now, retry.Down, true)
	require.Equal(t, retry.Admission{Wait: 3 * time.Second}, b.Admit(now, "job-c"), "doubling capped at MaxOpen")

	// After a full period even job-a may probe again: probes never stop.
	now = now.Add(6 * time.Second)
	a = b.Admit(now, "job-a")
	require.True(t, a.Go && a.Probe)
	b.Record(now, retry.Up, true)
	require.Equal(t, retry.BreakerClosed, b.State())
	require.Equal(t, -1, b.Fetch(now))
	require.Equal(t, retry.Admission{Go: true}, b.Admit(now, "job-a"))

	// Closed again with a fresh window: one failure does not reopen it.
	fail(b, now, 1)
	require.Equal(t, retry.BreakerClosed, b.State())
}

// A probe whose answer says nothing (a throttle, a cancelled call) lets
// another probe go at once, and answers of calls that are not the probe do
// not decide a half-open breaker.
func TestBreakerInconclusiveProbe(t *testing.T) {
	b := retry.NewBreaker(retry.BreakerConfig{Open: time.Second})
	fail(b, t0, 10)
	now := t0.Add(time.Second)
	require.True(t, b.Admit(now, "job-a").Probe)
	b.Record(now, retry.Up, false) // a call from before it opened
	require.Equal(t, retry.BreakerHalfOpen, b.State())
	b.Record(now, retry.NoVerdict, true)
	require.Equal(t, retry.BreakerOpen, b.State())
	require.True(t, b.Admit(now, "job-b").Probe, "the next probe goes at once")
}

func TestBreakerStateNames(t *testing.T) {
	for s, want := range map[retry.BreakerState]string{
		retry.BreakerClosed: "closed", retry.BreakerHalfOpen: "half_open", retry.BreakerOpen: "open",
	} {
		got, err := s.MarshalText()
		require.NoError(t, err)
		require.Equal(t, want, string(got))
		var back retry.BreakerState
		require.NoError(t, back.UnmarshalText(got))
		require.Equal(t, s, back)
	}
	var bad retry.BreakerState
	require.ErrorContains(t, bad.UnmarshalText([]byte("ajar")), `"ajar" is not closed, half_open or open`)
}
