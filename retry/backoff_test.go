package retry

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"
)

// manualClock is a backoff.Clock that moves only when told to.
type manualClock struct{ now time.Time }

func (c *manualClock) Now() time.Time      { return c.now }
func (c *manualClock) Add(d time.Duration) { c.now = c.now.Add(d) }
func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		givePolicy Policy
		wantErr    string
	}{
		{"zero is valid", Policy{}, ""},
		{"explicit", Policy{Initial: time.Second, Max: 10 * time.Second, Multiplier: 1.5, Jitter: 0.2, MaxElapsed: time.Minute}, ""},
		{"no jitter", Policy{Jitter: -1}, ""},
		{"multiplier 1", Policy{Multiplier: 1}, ""},
		{"negative Initial", Policy{Initial: -1}, "Policy.Initial is negative"},
		{"negative Max", Policy{Max: -time.Second}, "Policy.Max is negative"},
		{"negative MaxElapsed", Policy{MaxElapsed: -time.Second}, "Policy.MaxElapsed is negative"},
		{"negative MaxRetryAfter", Policy{MaxRetryAfter: -time.Second}, "Policy.MaxRetryAfter is negative"},
		{"negative NakInitial", Policy{NakInitial: -time.Second}, "Policy.NakInitial is negative"},
		{"negative NakMax", Policy{NakMax: -time.Second}, "Policy.NakMax is negative"},
		{"multiplier below 1", Policy{Multiplier: 0.5}, "Policy.Multiplier"},
		{"multiplier NaN", Policy{Multiplier: math.NaN()}, "Policy.Multiplier"},
		{"jitter 1", Policy{Jitter: 1}, "Policy.Jitter"},
		{"jitter -0.5", Policy{Jitter: -0.5}, "Policy.Jitter"},
		{"jitter NaN", Policy{Jitter: math.NaN()}, "Policy.Jitter"},
		{"Initial above default Max", Policy{Initial: 10 * time.Second}, "Policy.Initial 10s exceeds Policy.Max 5s"},
		{"NakInitial above NakMax", Policy{NakInitial: time.Minute, NakMax: 30 * time.Second}, "Policy.NakInitial 1m0s exceeds Policy.NakMax 30s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.givePolicy.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestPolicyNewUsesDefaults(t *testing.T) {
	t.Parallel()
	b := Policy{}.New()
	require.Equal(t, DefaultInitial, b.InitialInterval)
	require.Equal(t, DefaultMax, b.MaxInterval)
	require.InDelta(t, DefaultMultiplier, b.Multiplier, 0)
	require.InDelta(t, DefaultJitter, b.RandomizationFactor, 0)
	require.Equal(t, DefaultMaxElapsed, b.MaxElapsedTime, "MaxElapsed is set on purpose, not v4's 15m")
	require.Equal(t, backoff.Stop, b.Stop)
}

func TestDefaultPolicyIsTheZeroPolicy(t *testing.T) {
	t.Parallel()
	require.NoError(t, DefaultPolicy().Validate())
	require.Equal(t, Policy{}.WithDefaults(), DefaultPolicy().WithDefaults())
}

func TestPolicyBackoffGrowsAndCaps(t *testing.T) {
	t.Parallel()
	const give = 10
	base := func(i int) time.Duration { // the un-jittered interval of try i
		return min(100*time.Millisecond<<i, time.Second)
	}
	t.Run("without jitter", func(t *testing.T) {
		t.Parallel()
		b := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: -1, Clock: newManualClock()}.New()
		for i := range give {
			require.Equal(t, base(i), b.NextBackOff(), "try %d", i)
		}
	})
	t.Run("with jitter", func(t *testing.T) {
		t.Parallel()
		p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5, Clock: newManualClock()}
		lowest, highest := make([]time.Duration, give), make([]time.Duration, give)
		for range 200 {
			b := p.New()
			for i := range give {
				d := b.NextBackOff()
				lo, hi := base(i)/2, base(i)*3/2
				require.GreaterOrEqual(t, d, lo, "try %d", i)
				require.LessOrEqual(t, d, hi, "try %d", i)
				if lowest[i] == 0 || d < lowest[i] {
					lowest[i] = d
				}
				highest[i] = max(highest[i], d)
			}
		}
		for i := range give {
			// 200 samples uniform over ±50%: both tails are reached unless jitter is off.
			require.Less(t, lowest[i], base(i)*8/10, "try %d is jittered down", i)
			require.Greater(t, highest[i], base(i)*12/10, "try %d is jittered up", i)
		}
	})
}

func TestPolicyBackoffStopsAfterMaxElapsed(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	p := Policy{Initial: time.Second, Max: 4 * time.Second, Jitter: -1, MaxElapsed: 10 * time.Second, Clock: clock}
	b := p.New()
	var got []time.Duration
	for {
		d, ok := p.Next(b, apiErr(503, ""))
		if !ok {
			break
		}
		got = append(got, d)
		clock.Add(d)
	}
	// 1+2+4 = 7s elapsed; the next 4s would end at 11s > 10s.
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, got)
}

// Time held at a breaker, a pause or a throttle is not a try: a hold of any length leaves
// the elapsed-time budget where it was, so the next failure is still retried.
func TestPolicyNewExcludingLeavesHoldsOut(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	p := Policy{Initial: time.Second, Max: 4 * time.Second, Jitter: -1, MaxElapsed: 10 * time.Second, Clock: clock}
	var held time.Duration
	b := p.NewExcluding(func() time.Duration { return held })
	d, ok := p.Next(b, apiErr(503, ""))
	require.True(t, ok)
	clock.Add(d)

	hold := 5 * time.Minute // an outage or a pause far longer than MaxElapsed
	clock.Add(hold)
	held += hold
	var got []time.Duration
	for {
		d, ok := p.Next(b, apiErr(503, ""))
		if !ok {
			break
		}
		got = append(got, d)
		clock.Add(d)
	}
	require.Equal(t, []time.Duration{2 * time.Second, 4 * time.Second}, got, "the tries after the hold, as without it")

	// Without the exclusion, the hold ends the tries at once.
	plain := p.New()
	_, _ = p.Next(plain, apiErr(503, ""))
	clock.Add(hold)
	_, ok = p.Next(plain, apiErr(503, ""))
	require.False(t, ok)
}

func TestPolicyNewReturnsIndependentBackoffs(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	p := Policy{Initial: time.Second, Max: time.Minute, Jitter: -1, MaxElapsed: time.Hour, Clock: clock}
	first := p.New()
	for range 5 {
		first.NextBackOff()
	}
	clock.Add(59 * time.Minute)

	second := p.New()
	require.NotSame(t, first, second)
	require.Equal(t, time.Second, second.NextBackOff(), "a fresh backoff starts at Initial")
	require.Equal(t, 32*time.Second, first.NextBackOff(), "the first one kept its own progress")
	clock.Add(2 * time.Minute)
	require.Equal(t, backoff.Stop, first.NextBackOff(), "the first one's budget is spent")
	require.Equal(t, 2*time.Second, second.NextBackOff(), "the second one's budget started later")
}

func TestPolicyNextPrefersRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		givePolicy Policy
		giveErr    error
		giveSpent  time.Duration // elapsed on the backoff before Next
		want       time.Duration
		wantOK     bool
	}{
		{"no hint: backoff", Policy{}, apiErr(503, ""), 0, time.Second, true},
		{"hint", Policy{}, throttle(3 * time.Second), 0, 3 * time.Second, true},
		{"wrapped hint", Policy{}, fmt.Errorf("recover: %w", throttle(7*time.Second)), 0, 7 * time.Second, true},
		{"hint longer than the backoff", Policy{}, throttle(20 * time.Second), 0, 20 * time.Second, true},
		{"hint capped at the default 60s", Policy{MaxElapsed: time.Hour}, throttle(10 * time.Minute), 0, time.Minute, true},
		{"hint capped at MaxRetryAfter", Policy{MaxRetryAfter: 5 * time.Second}, throttle(30 * time.Second), 0, 5 * time.Second, true},
		{"hint past the budget stops", Policy{}, throttle(20 * time.Second), 15 * time.Second, 0, false},
		{"hint within the budget", Policy{}, throttle(5 * time.Second), 20 * time.Second, 5 * time.Second, true},
		{"hint on a 503", Policy{}, &answer{status: 503, retryAfter: 4 * time.Second}, 0, 4 * time.Second, true},
		{"no hint past the budget stops", Policy{}, apiErr(503, ""), 30 * time.Second, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			p := tt.givePolicy
			p.Initial, p.Jitter, p.Clock = time.Second, -1, clock
			b := p.New()
			clock.Add(tt.giveSpent)

			got, ok := p.Next(b, tt.giveErr)
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.want, got)
			if RetryAfter(tt.giveErr) > 0 {
				require.Equal(t, time.Second, b.NextBackOff(), "a hint does not advance the backoff")
			}
		})
	}
}

func TestPolicyNextWithOtherBackoffs(t *testing.T) {
	t.Parallel()
	p := Policy{}
	d, ok := p.Next(&backoff.StopBackOff{}, throttle(2*time.Second))
	require.True(t, ok, "the hint is used; a plain BackOff has no elapsed budget to check")
	require.Equal(t, 2*time.Second, d)

	_, ok = p.Next(&backoff.StopBackOff{}, apiErr(503, ""))
	require.False(t, ok)

	d, ok = p.Next(backoff.NewConstantBackOff(time.Second), nil)
	require.True(t, ok)
	require.Equal(t, time.Second, d)
}

func TestPolicyNakDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		givePolicy   Policy
		giveDelivery uint64
		giveErr      error
		want         time.Duration
	}{
		{"delivery 0 counts as 1", Policy{}, 0, nil, 5 * time.Second},
		{"delivery 1", Policy{}, 1, nil, 5 * time.Second},
		{"delivery 2", Policy{}, 2, nil, 10 * time.Second},
		{"delivery 3", Policy{}, 3, nil, 20 * time.Second},
		{"delivery 5", Policy{}, 5, nil, 80 * time.Second},
		{"delivery 6 capped", Policy{}, 6, nil, 2 * time.Minute},
		{"delivery 1000 capped", Policy{}, 1000, nil, 2 * time.Minute},
		{"max delivery capped", Policy{}, math.MaxUint64, nil, 2 * time.Minute},
		{"custom schedule", Policy{NakInitial: time.Second, NakMax: 3 * time.Second}, 3, nil, 3 * time.Second},
		{"retry-after is a floor", Policy{}, 1, throttle(45 * time.Second), 45 * time.Second},
		{"retry-after below the schedule", Policy{}, 4, throttle(5 * time.Second), 40 * time.Second},
		{"retry-after capped", Policy{}, 1, throttle(time.Hour), time.Minute},
		{"transient error", Policy{}, 2, apiErr(503, ""), 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.givePolicy
			p.Jitter = -1
			require.Equal(t, tt.want, p.NakDelay(tt.giveDelivery, tt.giveErr))

			p.Jitter = 0.5
			if RetryAfter(tt.giveErr) == 0 {
				for range 50 {
					got := p.NakDelay(tt.giveDelivery, tt.giveErr)
					require.GreaterOrEqual(t, got, tt.want/2)
					require.LessOrEqual(t, got, tt.want, "jitter never exceeds the schedule or NakMax")
				}
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		give   string
		want   time.Duration
		wantOK bool
	}{
		{"120", 120 * time.Second, true},
		{"0", 0, true},
		{"007", 7 * time.Second, true},
		{" 5\t", 5 * time.Second, true},
		{"9223372036", 9223372036 * time.Second, true},
		{"Wed, 21 Oct 2015 07:28:30 GMT", 30 * time.Second, true},
		{"Wed, 21 Oct 2015 08:28:00 GMT", time.Hour, true},
		{"Wednesday, 21-Oct-15 07:29:00 GMT", time.Minute, true},
		{"Wed Oct 21 07:28:10 2015", 10 * time.Second, true},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, true},
		{"Tue, 20 Oct 2015 07:28:00 GMT", 0, true}, // in the past: retry now

		{"", 0, false},
		{"   ", 0, false},
		{"-1", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"5s", 0, false},
		{"abc", 0, false},
		{"9223372037", 0, false},
		{"99999999999999999999999", 0, false},
		{"2015-10-21T07:28:30Z", 0, false},
		{"Wed, 21 Oct 2015 07:28:30 PST", 0, false},
		{"Wed, 32 Oct 2015 07:28:30 GMT", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseRetryAfter(tt.give, now)
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.want, got)
		})
	}
}
