package retry

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func newLimiter(t *testing.T, cfg LimiterConfig) *Limiter {
	t.Helper()
	l, err := NewLimiter(cfg)
	require.NoError(t, err)
	return l
}

// newWarmLimiter is a limiter past its first call (which empties the
// bucket), with the bucket refilled: for tests of the steady state. Inside a
// synctest bubble only (it sleeps a virtual second).
func newWarmLimiter(t *testing.T, cfg LimiterConfig) *Limiter {
	t.Helper()
	l := newLimiter(t, cfg)
	l.start(l.cfg.Clock())
	time.Sleep(time.Second)
	return l
}

// admit makes n admitted calls spread evenly over d on a manual clock; with every > 0 it
// also reports every call but each every-th as a success.
func admit(t *testing.T, l *Limiter, clock *manualClock, n int, d time.Duration, every int) {
	t.Helper()
	for i := range n {
		clock.Add(d / time.Duration(n))
		require.NoError(t, l.Wait(t.Context()))
		if every > 0 && i%every != 0 {
			l.Succeeded()
		}
	}
}

func TestLimiterConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		give    LimiterConfig
		wantErr string
	}{
		{"zero", LimiterConfig{}, ""},
		{"full", LimiterConfig{Rate: 100, Burst: 10, Min: 2, Decrease: 0.7, Increase: 5, Window: time.Second, Cooldown: 2 * time.Second, MaxPause: time.Minute, PauseOver: 3 * time.Second}, ""},
		{"negative Rate", LimiterConfig{Rate: -1}, "LimiterConfig.Rate"},
		{"NaN Rate", LimiterConfig{Rate: math.NaN()}, "LimiterConfig.Rate"},
		{"Inf Rate", LimiterConfig{Rate: math.Inf(1)}, "LimiterConfig.Rate"},
		{"negative Min", LimiterConfig{Min: -1}, "LimiterConfig.Min"},
		{"Min above Rate", LimiterConfig{Rate: 10, Min: 20}, "LimiterConfig.Min 20 exceeds LimiterConfig.Rate 10"},
		{"Decrease 1", LimiterConfig{Decrease: 1}, "LimiterConfig.Decrease 1 must be in (0, 1)"},
		{"negative Decrease", LimiterConfig{Decrease: -0.5}, "LimiterConfig.Decrease"},
		{"negative Increase", LimiterConfig{Increase: -1}, "LimiterConfig.Increase"},
		{"negative Burst", LimiterConfig{Burst: -1}, "LimiterConfig.Burst"},
		{"negative Window", LimiterConfig{Window: -1}, "LimiterConfig.Window"},
		{"negative Cooldown", LimiterConfig{Cooldown: -1}, "LimiterConfig.Cooldown"},
		{"negative MaxPause", LimiterConfig{MaxPause: -1}, "LimiterConfig.MaxPause"},
		{"negative PauseOver", LimiterConfig{PauseOver: -1}, "LimiterConfig.PauseOver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.give.Validate()
			_, newErr := NewLimiter(tt.give)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, newErr)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.ErrorContains(t, newErr, tt.wantErr)
		})
	}
}

func TestLimiterAdmitsRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		giveRate    float64
		giveWorkers int
		wantMin     int64
		wantMax     int64
	}{
		// 10s at 100/s from an empty bucket: no initial burst.
		{"one caller", 100, 1, 995, 1001},
		{"many callers share the rate", 100, 16, 995, 1001},
		{"low rate", 2, 4, 19, 21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := newLimiter(t, LimiterConfig{Rate: tt.giveRate})
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				var admitted atomic.Int64
				var wg sync.WaitGroup
				for range tt.giveWorkers {
					wg.Go(func() {
						for l.Wait(ctx) == nil {
							admitted.Add(1)
						}
					})
				}
				wg.Wait()
				require.GreaterOrEqual(t, admitted.Load(), tt.wantMin)
				require.LessOrEqual(t, admitted.Load(), tt.wantMax)
			})
		})
	}
}

func TestLimiterUnlimitedNeverBlocks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, LimiterConfig{})
		start := time.Now()
		for range 10_000 {
			require.NoError(t, l.Wait(t.Context()))
			l.Succeeded()
		}
		require.Equal(t, start, time.Now(), "no virtual time passed")
		require.Zero(t, l.Rate())
		require.True(t, l.PausedUntil().IsZero())
	})
}

func TestLimiterBurstShrinksWithRate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newWarmLimiter(t, LimiterConfig{Rate: 100})
		immediate := func() int {
			start := time.Now()
			n := 0
			for {
				require.NoError(t, l.Wait(t.Context()))
				if time.Now() != start {
					return n
				}
				n++
			}
		}
		require.Equal(t, 10, immediate(), "a tenth of a second at 100/s")
		time.Sleep(2 * time.Second) // virtual: let the bucket refill
		l.Throttled(0)
		require.InDelta(t, 50, l.Rate(), 1e-9)
		time.Sleep(2 * time.Second)
		require.Equal(t, 5, immediate(), "a tenth of a second at 50/s")
	})
}

// A limiter's first calls find an empty bucket, however long the process
// took to start (joining the fleet): a replica that starts (scale-out,
// restart) adds no burst to a fleet already at the API's quota. Every
// capped limiter, whatever its rate, paces its first calls.
func TestLimiterStartsEmpty(t *testing.T) {
	t.Parallel()
	for _, give := range []float64{10, 100, 300, 5000} {
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter(t, LimiterConfig{Rate: give})
			time.Sleep(time.Second) // virtual: starting up
			start := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			n := 0
			for l.Wait(ctx) == nil {
				n++
			}
			// 100 ms at the rate, and not the tenth of a second's burst on top.
			require.LessOrEqual(t, n, int(give/10)+1, "rate %v: calls in the first 100 ms", give)
			require.Equal(t, start.Add(100*time.Millisecond), time.Now())
		})
	}
}

// A change of rate applies to the callers already waiting: they queue again
// at the new rate. Slots reserved at the old rate would keep its pace after
// a cut, and add the new rate's slots to the old schedule after a raise: a
// fleet whose shares move (a replica joins or leaves) sent 400 req/s against
// a quota of 300 for half a second.
func TestLimiterRateChangeRepacesTheWaiters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		giveFrom    float64
		giveTo      float64
		giveWaiters int
		wantMin     int // admitted in the 300 ms after the change
		wantMax     int
	}{
		{"cut: the queue slows at once", 300, 100, 120, 29, 31},
		{"raise: the queue speeds up at once", 100, 300, 120, 85, 91},
		{"lifted: the queue goes at once", 100, 0, 120, 110, 110},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := newWarmLimiter(t, LimiterConfig{Rate: 1000})
				l.SetShare(tt.giveFrom)
				var admitted atomic.Int64
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var wg sync.WaitGroup
				for range tt.giveWaiters {
					wg.Go(func() {
						if l.Wait(ctx) == nil {
							admitted.Add(1)
						}
					})
				}
				synctest.Wait() // the burst went out, the rest wait in line
				before := admitted.Load()
				l.SetShare(tt.giveTo)
				time.Sleep(300 * time.Millisecond)
				got := int(admitted.Load() - before)
				require.GreaterOrEqual(t, got, tt.wantMin, "paced at %v/s after the change", tt.giveTo)
				require.LessOrEqual(t, got, tt.wantMax, "paced at %v/s after the change", tt.giveTo)
				cancel()
				wg.Wait()
			})
		})
	}
}

func TestLimiterMultiplicativeDecrease(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	l := newLimiter(t, LimiterConfig{Rate: 100, Min: 2, Clock: clock.Now})

	l.Throttled(0)
	require.InDelta(t, 50, l.Rate(), 1e-9)
	for range 20 {
		l.Throttled(0) // the rest of the burst answering the same window
	}
	require.InDelta(t, 50, l.Rate(), 1e-9, "one cut per cooldown")
	clock.Add(999 * time.Millisecond)
	l.Throttled(0)
	require.InDelta(t, 50, l.Rate(), 1e-9, "still cooling down")

	want := []float64{25, 12.5, 6.25, 3.125, 2, 2}
	for i, w := range want {
		clock.Add(time.Second)
		l.Throttled(0)
		require.InDelta(t, w, l.Rate(), 1e-9, "cut %d, floored at Min", i)
	}
}

func TestLimiterAdditiveIncrease(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	l := newLimiter(t, LimiterConfig{Rate: 100, Clock: clock.Now})
	l.Throttled(0)
	require.InDelta(t, 50, l.Rate(), 1e-9)

	l.Succeeded()
	require.InDelta(t, 50, l.Rate(), 1e-9, "no raise within the window of a cut")
	for i := range 10 {
		clock.Add(time.Second)
		for range 100 {
			l.Succeeded()
		}
		require.InDelta(t, 55+5*float64(i), l.Rate(), 1e-9, "one raise of Rate/20 per window, however many successes")
	}
	clock.Add(time.Second)
	l.Succeeded()
	require.InDelta(t, 100, l.Rate(), 1e-9, "never above the cap")

	t.Run("explicit Increase", func(t *testing.T) {
		t.Parallel()
		clock := newManualClock()
		l := newLimiter(t, LimiterConfig{Rate: 100, Increase: 30, Clock: clock.Now})
		l.Throttled(0)
		clock.Add(time.Second)
		l.Succeeded()
		require.InDelta(t, 80, l.Rate(), 1e-9)
		clock.Add(time.Second)
		l.Succeeded()
		require.InDelta(t, 100, l.Rate(), 1e-9, "110 is clamped to the cap")
	})
}

func TestLimiterDecreaseUsesMeasurements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		giveRate  float64
		giveCalls int
		giveEvery int // every-th call is not a success; 0: no successes reported
		want      float64
	}{
		{"halves with no successes", 100, 100, 0, 50},
		{"floored at the measured success rate", 100, 100, 5, 80},
		{"success rate below half is ignored", 100, 100, 1, 50},
		{"a cap far above demand bites at once", 1000, 100, 0, 50},
		{"no cap: half the measured rate", 0, 200, 0, 100},
		{"no cap: floored at the success rate", 0, 200, 10, 180},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			l := newLimiter(t, LimiterConfig{Rate: tt.giveRate, Clock: clock.Now})
			admit(t, l, clock, tt.giveCalls, time.Second, tt.giveEvery)
			l.Throttled(0)
			require.InDelta(t, tt.want, l.Rate(), 1e-6)
		})
	}
}

func TestLimiterUnlimitedRecoversToUnlimited(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	l := newLimiter(t, LimiterConfig{Clock: clock.Now})
	admit(t, l, clock, 200, time.Second, 0)
	l.Throttled(0)
	require.InDelta(t, 100, l.Rate(), 1e-9, "limited to half the measured 200/s")

	for i := range 9 {
		clock.Add(time.Second)
		l.Succeeded()
		require.InDelta(t, 110+10*float64(i), l.Rate(), 1e-9, "climbs by a twentieth of 200/s per window")
	}
	clock.Add(time.Second)
	l.Succeeded()
	require.Zero(t, l.Rate(), "back at the rate it was throttled at: unlimited again")

	// A throttle in a new episode measures afresh.
	clock.Add(3 * time.Second)
	admit(t, l, clock, 60, time.Second, 0)
	l.Throttled(0)
	require.InDelta(t, 30, l.Rate(), 1e-3)
}

func TestLimiterThrottleWithoutMeasurementsUsesMin(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, LimiterConfig{Min: 5})
	l.Throttled(0)
	require.InDelta(t, 5, l.Rate(), 1e-9)
}

// A short Retry-After ("this second's quota is spent") is the throttled call's own wait:
// the rest of the pool goes on at the lowered rate, however many in-flight calls answer
// with a throttle during the Cooldown.
func TestLimiterShortRetryAfterHoldsOnlyTheThrottledCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newWarmLimiter(t, LimiterConfig{Rate: 100, Burst: 1})
		start := time.Now()
		for range 30 { // a burst of in-flight calls throttled at once
			l.Throttled(time.Second)
		}
		require.True(t, l.PausedUntil().IsZero(), "no pool-wide pause")
		require.InDelta(t, 50, l.Rate(), 1e-9, "one cut")
		for range 5 {
			require.NoError(t, l.Wait(t.Context()))
		}
		require.Equal(t, start.Add(4*20*time.Millisecond), time.Now(), "paced at 50/s, not paused")

		time.Sleep(time.Second) // a Cooldown later, but successes outnumber the throttles
		for range 40 {
			l.Succeeded()
		}
		l.Throttled(time.Second)
		require.True(t, l.PausedUntil().IsZero(), "an isolated throttle does not pause")
		require.Less(t, l.Rate(), 50.0, "but cuts again")
	})
}

// The whole pool pauses for the Retry-After only when the throttling persists: a long
// hint, or throttles outnumbering successes a Cooldown or more after the last cut.
func TestLimiterPersistentThrottlingPauses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		give          LimiterConfig
		giveSucceeded int           // successes after the first cut
		giveThrottled int           // further throttles after the first cut, within the Cooldown
		giveAfter     time.Duration // when the last throttle comes, after the first cut
		giveHint      time.Duration // its Retry-After
		wantPause     time.Duration // from the last throttle; 0: none
	}{
		{"no success since the cut", LimiterConfig{}, 0, 0, time.Second, time.Second, time.Second},
		{"throttles outnumber successes", LimiterConfig{}, 5, 5, time.Second, time.Second, time.Second},
		{"as many successes as throttles", LimiterConfig{}, 6, 5, time.Second, time.Second, 0},
		{"successes outnumber throttles", LimiterConfig{}, 50, 5, time.Second, time.Second, 0},
		{"within the Cooldown: the calls in flight at the cut", LimiterConfig{}, 0, 5, 999 * time.Millisecond, time.Second, 0},
		{"no hint: nothing to pause for", LimiterConfig{}, 0, 5, time.Second, 0, 0},
		{"a longer Cooldown", LimiterConfig{Cooldown: 3 * time.Second}, 0, 5, 2 * time.Second, time.Second, 0},
		{"long hint pauses at once", LimiterConfig{}, 50, 0, time.Millisecond, 2 * time.Second, 2 * time.Second},
		{"long hint capped at MaxPause", LimiterConfig{MaxPause: 5 * time.Second}, 50, 0, time.Millisecond, time.Minute, 5 * time.Second},
		{"hint within PauseOver", LimiterConfig{PauseOver: 3 * time.Second}, 50, 0, time.Millisecond, 3 * time.Second, 0},
		{"hint over PauseOver", LimiterConfig{PauseOver: 3 * time.Second}, 50, 0, time.Millisecond, 4 * time.Second, 4 * time.Second},
		{"hint over a short PauseOver", LimiterConfig{PauseOver: 100 * time.Millisecond}, 50, 0, time.Millisecond, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			tt.give.Rate, tt.give.Clock = 100, clock.Now
			l := newLimiter(t, tt.give)
			l.Throttled(100 * time.Millisecond) // the first: cuts, never pauses with a short hint
			require.True(t, l.PausedUntil().IsZero())
			for range tt.giveSucceeded {
				l.Succeeded()
			}
			for range tt.giveThrottled {
				l.Throttled(100 * time.Millisecond)
			}
			require.True(t, l.PausedUntil().IsZero(), "no pause within the Cooldown")
			clock.Add(tt.giveAfter)
			l.Throttled(tt.giveHint)
			if tt.wantPause == 0 {
				require.True(t, l.PausedUntil().IsZero(), "no pause")
				return
			}
			require.True(t, clock.Now().Add(tt.wantPause).Equal(l.PausedUntil()), "paused until %v, want %v", l.PausedUntil(), tt.wantPause)
		})
	}
}

func TestLimiterPauseBlocksAllWaiters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give LimiterConfig
	}{
		{"unlimited", LimiterConfig{Min: 1000}}, // the cut goes to Min: nothing was measured
		{"capped", LimiterConfig{Rate: 1000, Burst: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := newWarmLimiter(t, tt.give)
				start := time.Now()
				l.Throttled(2 * time.Second) // longer than PauseOver: pauses at once
				require.Equal(t, start.Add(2*time.Second), l.PausedUntil())

				admittedAt := make([]time.Time, 8)
				var wg sync.WaitGroup
				for i := range admittedAt {
					wg.Go(func() {
						if err := l.Wait(t.Context()); err == nil {
							admittedAt[i] = time.Now()
						}
					})
				}
				wg.Wait()
				for i, at := range admittedAt {
					require.Equal(t, start.Add(2*time.Second), at, "waiter %d is admitted exactly when the pause ends", i)
				}
			})
		})
	}
}

// Callers that got their rate slot during a pause queue again when it ends: the end of a
// pause admits a burst, then the rate, not every caller at once.
func TestLimiterPauseVoidsSlots(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newWarmLimiter(t, LimiterConfig{Rate: 10, Burst: 1, Min: 5})
		start := time.Now()
		require.NoError(t, l.Wait(t.Context())) // spends the burst

		admittedAt := make([]time.Time, 5)
		var wg sync.WaitGroup
		for i := range admittedAt {
			wg.Go(func() {
				require.NoError(t, l.Wait(t.Context()))
				admittedAt[i] = time.Now()
			})
		}
		synctest.Wait() // slots reserved at 100, 200, ... 500 ms
		time.Sleep(50 * time.Millisecond)
		l.Throttled(2 * time.Second) // pauses until 2.05s, cuts to 5/s
		require.InDelta(t, 5, l.Rate(), 1e-9)
		wg.Wait()

		slices.SortFunc(admittedAt, time.Time.Compare)
		end := start.Add(2050 * time.Millisecond)
		for i, at := range admittedAt {
			require.Equal(t, end.Add(time.Duration(i)*200*time.Millisecond), at, "waiter %d paced at 5/s after the pause", i)
		}
	})
}

func TestLimiterPauseExtendsAndIsCapped(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newWarmLimiter(t, LimiterConfig{Rate: 100, MaxPause: 10 * time.Second})
		start := time.Now()
		l.Throttled(2 * time.Second)

		var admittedAt time.Time
		var wg sync.WaitGroup
		wg.Go(func() {
			require.NoError(t, l.Wait(t.Context()))
			admittedAt = time.Now()
		})
		time.Sleep(500 * time.Millisecond) // virtual time
		l.Throttled(3 * time.Second)       // an in-flight call's answer: extends the pause
		l.Throttled(2 * time.Second)
		l.Throttled(time.Second) // within PauseOver and the Cooldown: no effect on the pause
		require.Equal(t, start.Add(3500*time.Millisecond), l.PausedUntil(), "a shorter hint never shortens a pause")
		require.InDelta(t, 50, l.Rate(), 1e-9, "throttles during a pause do not cut again")
		wg.Wait()
		require.Equal(t, start.Add(3500*time.Millisecond), admittedAt)

		time.Sleep(time.Second)
		l.Throttled(time.Hour)
		require.Equal(t, time.Now().Add(10*time.Second), l.PausedUntil(), "capped at MaxPause")
		require.InDelta(t, 25, l.Rate(), 1e-9, "a throttle after the pause cuts again")
	})
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	t.Parallel()
	t.Run("canceled during a pause", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter(t, LimiterConfig{})
			l.Throttled(30 * time.Second)
			start := time.Now()
			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() { errc <- l.Wait(ctx) }()
			synctest.Wait()
			require.Empty(t, errc, "blocked by the pause")
			cancel()
			require.ErrorIs(t, <-errc, context.Canceled)
			require.Equal(t, start, time.Now(), "returned without waiting for the pause")
		})
	})
	t.Run("deadline before the pause ends", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter(t, LimiterConfig{})
			l.Throttled(30 * time.Second)
			start := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			err := l.Wait(ctx)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorContains(t, err, "Retry-After pause")
			require.Equal(t, start, time.Now(), "fails at once, not at the deadline")
		})
	})
	t.Run("deadline before the rate admits", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter(t, LimiterConfig{Rate: 1})
			require.NoError(t, l.Wait(t.Context()))
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, l.Wait(ctx), context.DeadlineExceeded)
		})
	})
	t.Run("already canceled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		l := newLimiter(t, LimiterConfig{})
		require.ErrorIs(t, l.Wait(ctx), context.Canceled)
	})
	t.Run("canceled wait gives its slot back", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := newWarmLimiter(t, LimiterConfig{Rate: 1, Burst: 1})
			start := time.Now()
			require.NoError(t, l.Wait(t.Context()))

			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() { errc <- l.Wait(ctx) }()
			synctest.Wait()
			require.Empty(t, errc, "waiting for the next slot")
			cancel()
			require.ErrorIs(t, <-errc, context.Canceled)

			require.NoError(t, l.Wait(t.Context()))
			require.Equal(t, start.Add(time.Second), time.Now(), "the next caller gets the canceled slot, not the one after")
		})
	})
}

func TestLimiterConcurrentUse(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const rateCap, floor = 200.0, 5.0
		l := newLimiter(t, LimiterConfig{Rate: rateCap, Min: floor})
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		var calls atomic.Int64
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := 0; l.Wait(ctx) == nil; i++ {
					calls.Add(1)
					time.Sleep(20 * time.Millisecond) // the call's virtual latency
					if (i+w)%50 == 0 {
						l.Throttled(time.Duration(i%3) * 100 * time.Millisecond)
					} else {
						l.Succeeded()
					}
					if r := l.Rate(); r < floor || r > rateCap {
						t.Errorf("rate %v outside [%v, %v]", r, floor, rateCap)
					}
				}
			})
		}
		wg.Wait()
		require.Positive(t, calls.Load())
		require.LessOrEqual(t, calls.Load(), int64(rateCap*20+20), "never above the cap")
	})
}

func TestLimiterLimitsAgainAfterBeingLifted(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t, LimiterConfig{Increase: 1000})
		for range 100 {
			require.NoError(t, l.Wait(t.Context()))
			time.Sleep(10 * time.Millisecond)
		}
		l.Throttled(0)
		require.InDelta(t, 50, l.Rate(), 1)

		time.Sleep(time.Second)
		l.Succeeded()
		require.Zero(t, l.Rate(), "lifted")
		l.Throttled(0) // the same instant as the lift
		limit := l.Rate()
		require.Positive(t, limit)

		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		admitted := 0
		for ; admitted < 10_000 && l.Wait(ctx) == nil; admitted++ {
		}
		require.InDelta(t, 2*limit, admitted, limit/10+2, "paced at the new limit of %v/s", limit)
	})
}

func TestLimiterWithoutCapCanLeaveTheFloor(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	l := newLimiter(t, LimiterConfig{Min: 10, Clock: clock.Now})
	admit(t, l, clock, 5, time.Second, 0) // 5/s measured: below Min
	l.Throttled(0)
	require.InDelta(t, 10, l.Rate(), 1e-9)
	clock.Add(time.Second)
	l.Succeeded()
	require.Zero(t, l.Rate(), "at the floor but above the measured rate: unlimited again")
}
