package retry

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limiter defaults.
const (
	DefaultDecrease  = 0.5
	DefaultWindow    = time.Second
	DefaultCooldown  = time.Second
	DefaultMaxPause  = 60 * time.Second
	DefaultPauseOver = time.Second
)

// FleetSync is the fleet-wide side of a Limiter: it learns the fleet's rate from the
// throttles and successes every replica reports, and sets each replica's share
// (Limiter.SetShare). queue.Fleet implements it. Its methods must not block.
type FleetSync interface {
	Throttled()
	Succeeded()
}

// LimiterConfig configures a Limiter. A zero field takes its default.
type LimiterConfig struct {
	// Rate caps this process's calls per second. Default 0: no cap; the Limiter then admits
	// everything until the API throttles (see Limiter).
	Rate float64
	// Burst is how many calls may start at once after a quiet spell (not at the first
	// call: the bucket is empty then). Default 0: a tenth of a second's worth of the
	// current rate (at least 1), recomputed as the rate moves, so a lowered rate also gets
	// a smaller burst.
	Burst int
	// Min is the floor a throttle can lower the rate to, in req/s. Default 1, or Rate when
	// Rate is below 1.
	Min float64
	// Decrease is the multiplicative factor applied on a throttle, in (0, 1). Default 0.5.
	Decrease float64
	// Increase is the rate in req/s added back for each Window that had a success and no
	// throttle, up to the cap. Default 0: a twentieth of the cap (with no cap: of the rate
	// estimated at the throttle), so recovering from one halving takes ten windows.
	Increase float64
	// Window is the additive-increase period and the span over which admitted and
	// successful calls are measured. Default 1s.
	Window time.Duration
	// Cooldown is the least time between two decreases, so the burst of throttles answering
	// the calls of one window lowers the rate once, not to the floor. Default 1s.
	Cooldown time.Duration
	// MaxPause caps a pool-wide Retry-After pause. Default 60s.
	MaxPause time.Duration
	// PauseOver is the longest Retry-After that holds only the throttled call: a throttle
	// whose hint is longer pauses every caller until then (capped at MaxPause). Shorter
	// hints pause every caller only when the throttling persists (see Limiter). Default 1s,
	// the shortest hint the header's whole seconds can give: "this second's quota is
	// spent" is answered by the rate, "come back in 2s or more" by a pause.
	PauseOver time.Duration
	// Clock returns the time used for the limiter's decisions. Default nil: time.Now.
	// Waits use runtime timers: a test that replaces Clock must not rely on Wait blocking
	// for a Clock-only duration; run waiting tests in testing/synctest instead.
	Clock func() time.Time
}

// Validate reports the first invalid field by name. Zero fields are valid (defaults).
func (c LimiterConfig) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"Rate", c.Rate}, {"Min", c.Min}, {"Increase", c.Increase}, {"Decrease", c.Decrease}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return fmt.Errorf("retry: LimiterConfig.%s %v must be a finite number >= 0", f.name, f.v)
		}
	}
	if c.Decrease >= 1 {
		return fmt.Errorf("retry: LimiterConfig.Decrease %v must be in (0, 1)", c.Decrease)
	}
	if c.Rate > 0 && c.Min > c.Rate {
		return fmt.Errorf("retry: LimiterConfig.Min %v exceeds LimiterConfig.Rate %v", c.Min, c.Rate)
	}
	if c.Burst < 0 {
		return fmt.Errorf("retry: LimiterConfig.Burst %d is negative", c.Burst)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"Window", c.Window}, {"Cooldown", c.Cooldown}, {"MaxPause", c.MaxPause}, {"PauseOver", c.PauseOver}} {
		if f.d < 0 {
			return fmt.Errorf("retry: LimiterConfig.%s is negative (%v)", f.name, f.d)
		}
	}
	return nil
}

func (c LimiterConfig) withDefaults() LimiterConfig {
	if c.Min == 0 {
		c.Min = 1
		if c.Rate > 0 && c.Rate < 1 {
			c.Min = c.Rate
		}
	}
	if c.Decrease == 0 {
		c.Decrease = DefaultDecrease
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.MaxPause == 0 {
		c.MaxPause = DefaultMaxPause
	}
	if c.PauseOver == 0 {
		c.PauseOver = DefaultPauseOver
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// Limiter paces the calls of the whole process to the API (one per process, shared by every
// worker goroutine) and adapts the pace to the API's answers: AIMD, as TCP does.
//
//   - Throttled lowers the rate multiplicatively, at most once per Cooldown and never while
//     a pause is on (the throttles of calls admitted before a cut must not cut again), to
//     rate·Decrease, but no lower than the success rate measured over the last Window or two
//     when that is higher (the API demonstrably served that much), and never below Min.
//     "The rate" here is the lower of the limit and the measured admission rate, so a cap
//     far above the real demand does not take several cuts to bite.
//   - A Retry-After hint is first the throttled call's own wait: its caller sleeps it before
//     retrying, while the other callers go on at the lowered rate. It pauses every caller
//     (from now to now+hint, capped at MaxPause; a later pause extends, never shortens)
//     only when the throttling persists, that is when (a) the hint is longer than
//     PauseOver (default 1s: the API asks for more than "this second's quota is spent"),
//     or (b) the throttle comes a Cooldown or more after the last cut and the throttles
//     reported since that cut, this one and those of the calls in flight at the cut
//     included, outnumber the successes reported since then: the cut did not bring the
//     calls under the quota. So neither an isolated throttle nor the burst answering the
//     calls in flight at a cut pauses the pool (pausing it a second for each 1s hint
//     halved a quota-bound drain). Without a hint there is nothing to pause for; the rate
//     goes on being cut.
//   - A caller whose rate slot came while a pause began queues again once it ends, so the
//     end of a pause admits at most a burst, never every caller that waited through it.
//   - Succeeded raises the rate by Increase once per Window, up to the cap.
//   - Without a cap (Rate 0) the limiter admits everything until the first throttle, then
//     limits to the measured admission rate times Decrease (Min if nothing was measured)
//     and climbs back as above; once the limit is back to the rate measured at that
//     throttle it is lifted again, and the next throttle measures afresh.
//
// Wait is cheap when nothing is limited (atomic loads and a clock read); Throttled takes a
// mutex; Succeeded takes it only when the rate is below the cap and a Window has passed.
// A Limiter starts no goroutine and is safe for concurrent use.
type Limiter struct {
	cfg LimiterConfig
	// pace is the token bucket at the current finite limit. A change of
	// limit replaces it (see setLimit), so the callers waiting for a slot
	// of the old one queue again at the new rate.
	pace atomic.Pointer[pacer]
	// epoch is the clock's reading at NewLimiter; the atomic instants are
	// durations since it, so with time.Now they are on the monotonic clock
	// (a Unix-nanosecond instant is wall time: an NTP step back of an hour
	// would stretch a 1 s Retry-After pause to an hour).
	epoch time.Time

	unlimited   atomic.Bool   // the limit is +Inf: Wait skips pace
	started     atomic.Bool   // the first call emptied the bucket (see start)
	reduced     atomic.Bool   // the limit is below the ceiling: Succeeded may raise it
	pausedUntil atomic.Int64  // ns since epoch; 0: never paused. Written under mu.
	nextRaise   atomic.Int64  // ns since epoch before which Succeeded does not raise
	rollAt      atomic.Int64  // ns since epoch when the measuring window rolls over
	bound       atomic.Bool   // a call waited for the rate since the last Bound
	admitted    atomic.Uint64 // calls admitted by Wait, ever
	succeeded   atomic.Uint64 // calls reported by Succeeded, ever
	fleet       atomic.Pointer[fleetRef]

	mu        sync.Mutex
	limit     float64 // current limit in req/s; +Inf: none
	ceiling   float64 // where additive increase stops; +Inf without a cap until a throttle
	increase  float64 // req/s added per Window
	lastCut   time.Time
	throttles uint64 // throttles reported, ever
	// throttles (this one included) and successes counted at the last cut; see persistent
	cutThrottles, cutSucceeded uint64
	pauseStart                 time.Time // start of the current or last pause
	prev                       mark      // start of the previous measuring window
	cur                        mark      // start of the current one
}

type mark struct {
	at                  time.Time
	admitted, succeeded uint64
	throttles           uint64
}

// NewLimiter returns a Limiter for cfg, or the error of cfg.Validate.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Limiter{cfg: cfg, limit: math.Inf(1), ceiling: math.Inf(1)}
	// "No limit" is the unlimited flag, which lets Wait skip rl entirely; rl keeps a finite
	// limit meanwhile (Min as a placeholder here, the last limit later).
	initial := cfg.Min
	if cfg.Rate > 0 {
		l.limit, l.ceiling, initial = cfg.Rate, cfg.Rate, cfg.Rate
		l.increase = cfg.Increase
		if l.increase == 0 {
			l.increase = cfg.Rate / 20
		}
	}
	now := cfg.Clock()
	l.pace.Store(newPacer(now, initial, l.burstFor(initial), l.burstFor(initial)))
	l.unlimited.Store(cfg.Rate == 0)
	l.epoch = now
	l.prev = mark{at: now}
	l.cur = l.prev
	l.rollAt.Store(l.ns(now.Add(cfg.Window)))
	return l, nil
}

// Wait blocks until the caller may make one call: no pool-wide pause is on and the rate
// admits it. A pause that begins while the caller waits for its slot voids the slot: the
// caller waits the pause out and queues for a fresh slot. It returns ctx.Err() if ctx ends
// first, and an error wrapping context.DeadlineExceeded at once if the wait would outlast
// ctx's deadline. A canceled wait gives its rate slot back. No call waits on NATS: with a
// fleet, the share is set by the fleet's own goroutine.
func (l *Limiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for {
		seen, err := l.waitPause(ctx)
		if err != nil {
			return err
		}
		if !l.unlimited.Load() {
			now := l.cfg.Clock()
			if !l.started.Load() {
				l.start(now)
			}
			p := l.pace.Load()
			r := p.rl.ReserveN(now, 1)
			if d := r.DelayFrom(now); d > 0 {
				l.bound.Store(true)
				changed, err := sleep(ctx, d, p.changed, "rate limit wait")
				if err != nil {
					r.CancelAt(l.cfg.Clock())
					return err
				}
				if changed {
					// The slot was reserved at the old rate: queue again at the new
					// one. A raise would otherwise add the new rate's slots to the
					// old schedule, and a cut keep the old pace until the queue
					// drained (a fleet over its quota at every scale-out and in).
					continue
				}
			}
		}
		// A pause that began while we waited holds us too (the API said stop), and
		// voids the slot: otherwise every caller that waited through the pause would call
		// at once when it ends.
		if l.pausedSince(seen) {
			continue
		}
		break
	}
	l.admitted.Add(1)
	l.tick(l.cfg.Clock())
	return nil
}

func (l *Limiter) paused(now time.Time) bool {
	return l.ns(now) < l.pausedUntil.Load()
}

// pausedSince reports whether a pause that began (or was extended) after the one ending at
// seen (a pausedUntil value) is on. It reads the clock only if there is such a pause.
func (l *Limiter) pausedSince(seen int64) bool {
	n := l.pausedUntil.Load()
	return n != seen && l.ns(l.cfg.Clock()) < n
}

// Throttled records a throttle answer from the API and its Retry-After hint (0 if none):
// it lowers the rate and, when the throttling is persistent, pauses every caller until
// now+retryAfter, as the Limiter doc says. The throttled call's own wait for retryAfter is
// its caller's.
func (l *Limiter) Throttled(retryAfter time.Duration) {
	now := l.cfg.Clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	l.throttles++
	paused := l.paused(now)
	cooling := !l.lastCut.IsZero() && now.Sub(l.lastCut) < l.cfg.Cooldown
	fleet := l.fleet.Load()
	if retryAfter > 0 && (retryAfter > l.cfg.PauseOver || fleet == nil && !paused && !cooling && l.persistent()) {
		if until := l.ns(now.Add(min(retryAfter, l.cfg.MaxPause))); until > l.pausedUntil.Load() {
			if !paused {
				l.pauseStart = now
			}
			l.pausedUntil.Store(until)
		}
	}
	if fleet != nil {
		// The fleet cuts, for every replica, within a sync period; throttles here may
		// be the others' doing, so only a long Retry-After pauses this one.
		fleet.Throttled()
		return
	}
	if paused || cooling {
		return
	}
	admitted, succeeded := l.rates(now)
	cur := l.limit
	if admitted > 0 && admitted < cur {
		cur = admitted
	}
	if math.IsInf(cur, 1) { // no cap and nothing measured yet
		cur = l.cfg.Min
	}
	if math.IsInf(l.ceiling, 1) { // first throttle without a cap: remember where we were
		l.ceiling = max(cur, l.cfg.Min)
		l.increase = l.cfg.Increase
		if l.increase == 0 {
			l.increase = l.ceiling / 20
		}
	}
	next := cur * l.cfg.Decrease
	if succeeded > next && succeeded < cur {
		next = succeeded
	}
	next = max(next, l.cfg.Min)
	l.setLimit(now, next)
	l.lastCut = now
	l.cutThrottles, l.cutSucceeded = l.throttles, l.succeeded.Load()
	l.nextRaise.Store(l.ns(now.Add(l.cfg.Window)))
	// Without a cap there is always a way back: to unlimited, even from Min.
	l.reduced.Store(next < l.ceiling || l.cfg.Rate == 0)
}

// persistent reports whether the throttles reported since the last cut (this one
// included) outnumber the successes reported since then: the cut did not help. Throttled
// asks only a Cooldown or more after the cut, when calls admitted at the lowered rate
// have had time to answer. It requires l.mu.
func (l *Limiter) persistent() bool {
	if l.lastCut.IsZero() {
		return false
	}
	return l.throttles-l.cutThrottles > l.succeeded.Load()-l.cutSucceeded
}

// Succeeded records a successful call; once per Window it raises a lowered rate by
// Increase, up to the cap (without a cap: lifting the limit once it is back to the rate
// measured at the throttle).
func (l *Limiter) Succeeded() {
	l.succeeded.Add(1)
	now := l.cfg.Clock()
	l.tick(now)
	if f := l.fleet.Load(); f != nil {
		f.Succeeded()
		return
	}
	if !l.reduced.Load() || l.ns(now) < l.nextRaise.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.reduced.Load() || l.ns(now) < l.nextRaise.Load() {
		return // another goroutine raised it in the meantime
	}
	next := l.limit + l.increase
	if next >= l.ceiling {
		next = math.Inf(1)
		if l.cfg.Rate > 0 {
			next = l.cfg.Rate
		}
		l.ceiling = next
		l.reduced.Store(false)
	}
	l.setLimit(now, next)
	l.nextRaise.Store(l.ns(now.Add(l.cfg.Window)))
}

type fleetRef struct{ FleetSync }

// JoinFleet makes the rate the fleet's (see FleetRate): from now on Throttled and
// Succeeded report to f instead of cutting and raising this process's rate, and f sets
// this process's share with SetShare. Retry-After pauses stay this process's.
//
// The measures start afresh: the time spent joining is not a rate of zero (the fleet's
// first cut starts from them).
func (l *Limiter) JoinFleet(f FleetSync) {
	now := l.cfg.Clock()
	l.mu.Lock()
	l.prev = mark{at: now, admitted: l.admitted.Load(), succeeded: l.succeeded.Load(), throttles: l.throttles}
	l.cur = l.prev
	l.rollAt.Store(l.ns(now.Add(l.cfg.Window)))
	l.mu.Unlock()
	l.fleet.Store(&fleetRef{f})
}

// SetShare sets this process's rate to r req/s, 0 meaning none: the fleet's rate divided
// by the live replicas, from the FleetSync.
func (l *Limiter) SetShare(r float64) {
	if r < 0 || math.IsNaN(r) {
		return
	}
	if r == 0 {
		r = math.Inf(1)
	}
	now := l.cfg.Clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if r == l.limit {
		return
	}
	l.setLimit(now, r)
}

// Rates returns the calls per second this process admitted, and of them the API served
// (answered otherwise than with a throttle: failures and client errors spent quota too),
// over the last Window or two: its part of the fleet's measures.
func (l *Limiter) Rates() (admitted, served float64) {
	now := l.cfg.Clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	admitted, succeeded := l.rates(now)
	// Throttles are counted as they answer, admissions as they go out: a burst's late
	// throttles must not make the served rate look lower than the successes show.
	throttled := float64(l.throttles-l.prev.throttles) / l.span(now).Seconds()
	return admitted, max(admitted-throttled, succeeded)
}

// Bound reports whether the limit held a call back (a call waited for its rate slot)
// since the last Bound: the fleet raises only a limit that binds, so a limit far above
// what the replicas send does not climb for ever.
func (l *Limiter) Bound() bool { return l.bound.Swap(false) }

// Rate returns the current limit in req/s, 0 meaning none (as LimiterConfig.Rate).
func (l *Limiter) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if math.IsInf(l.limit, 1) {
		return 0
	}
	return l.limit
}

// PausedUntil returns when the current or last pool-wide Retry-After pause ends; the zero
// Time if there never was one. Callers are paused while it is in the future.
func (l *Limiter) PausedUntil() time.Time {
	if n := l.pausedUntil.Load(); n != 0 {
		return l.epoch.Add(time.Duration(n))
	}
	return time.Time{}
}

// start empties the bucket at the first call, whatever filled it while the
// process started (joining the fleet takes a few syncs): a replica that
// starts (a scale-out, a restart) does not know what the fleet, or its own
// previous process, just spent of the API's bucket, and a full bucket would
// add a burst on top of a fleet already at the quota (a tenth of a second's
// worth per new replica: 429s at every scale-out).
func (l *Limiter) start(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started.Load() {
		return
	}
	p := l.pace.Load()
	if n := int(p.rl.TokensAt(now)); n > 0 {
		p.rl.AllowN(now, n)
	}
	l.started.Store(true)
}

// setLimit requires l.mu.
func (l *Limiter) setLimit(now time.Time, r float64) {
	l.limit = r
	unlimited := math.IsInf(r, 1)
	old := l.pace.Load()
	if unlimited {
		r = float64(old.rl.Limit()) // pace keeps its last finite limit; see NewLimiter
	}
	if unlimited == l.unlimited.Load() && float64(old.rl.Limit()) == r {
		return
	}
	// A fresh bucket at the new rate, with the tokens the old one had saved
	// (none while callers queue), and the queue woken to join it (or to go
	// at once, when the limit is lifted).
	l.pace.Store(newPacer(now, r, l.burstFor(r), int(max(0, old.rl.TokensAt(now)))))
	l.unlimited.Store(unlimited)
	close(old.changed)
}

// pacer is a token bucket at one rate; changed is closed when a new rate
// replaces it.
type pacer struct {
	rl      *rate.Limiter
	changed chan struct{}
}

// newPacer returns a bucket of r per second and burst, holding tokens
// (at most burst) at now.
func newPacer(now time.Time, r float64, burst, tokens int) *pacer {
	rl := rate.NewLimiter(rate.Limit(r), burst)
	if spent := burst - min(tokens, burst); spent > 0 {
		rl.AllowN(now, spent)
	}
	return &pacer{rl: rl, changed: make(chan struct{})}
}

func (l *Limiter) burstFor(r float64) int {
	if l.cfg.Burst > 0 {
		return l.cfg.Burst
	}
	return max(1, int(r/10))
}

// tick rolls the measuring window over when it has ended; the check is one atomic load.
func (l *Limiter) tick(now time.Time) {
	if l.ns(now) < l.rollAt.Load() {
		return
	}
	l.mu.Lock()
	l.roll(now)
	l.mu.Unlock()
}

// roll requires l.mu.
func (l *Limiter) roll(now time.Time) {
	if now.Sub(l.cur.at) < l.cfg.Window {
		return
	}
	m := mark{at: now, admitted: l.admitted.Load(), succeeded: l.succeeded.Load(), throttles: l.throttles}
	if now.Sub(l.cur.at) >= 2*l.cfg.Window {
		l.prev = m // idle gap: what happened before it says nothing about now
	} else {
		l.prev = l.cur
	}
	l.cur = m
	l.rollAt.Store(l.ns(now.Add(l.cfg.Window)))
}

// rates returns the admitted and successful calls per second since the previous window
// began (one to two windows), not counting time paused, when nothing is admitted; it
// requires l.mu.
func (l *Limiter) rates(now time.Time) (admitted, succeeded float64) {
	span := l.span(now)
	return float64(l.admitted.Load()-l.prev.admitted) / span.Seconds(),
		float64(l.succeeded.Load()-l.prev.succeeded) / span.Seconds()
}

// span is the time the measures cover; it requires l.mu.
func (l *Limiter) span(now time.Time) time.Duration {
	span := now.Sub(l.prev.at)
	if n := l.pausedUntil.Load(); n != 0 {
		from, to := maxTime(l.prev.at, l.pauseStart), minTime(now, l.epoch.Add(time.Duration(n)))
		if to.After(from) {
			span -= to.Sub(from)
		}
	}
	return max(span, l.cfg.Window/10)
}

// ns is t as the atomic instants hold it: nanoseconds since l.epoch.
func (l *Limiter) ns(t time.Time) int64 { return int64(t.Sub(l.epoch)) }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// waitPause waits out the pause that is on, if any, and returns the end of the last pause
// it saw (pausedUntil's value), so that Wait can tell a pause that begins later.
func (l *Limiter) waitPause(ctx context.Context) (int64, error) {
	for {
		until := l.pausedUntil.Load()
		if until == 0 {
			return 0, nil
		}
		d := time.Duration(until - l.ns(l.cfg.Clock()))
		if d <= 0 {
			return until, nil
		}
		if _, err := sleep(ctx, d, nil, "Retry-After pause"); err != nil {
			return 0, err
		}
		if l.pausedUntil.Load() == until {
			return until, nil // not extended while we slept
		}
	}
}

// sleep waits d, until wake is closed (woken) or until ctx ends; it fails at
// once if ctx's deadline comes first.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}, what string) (woken bool, err error) {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return false, fmt.Errorf("retry: %s of %v would outlast the context deadline: %w", what, d, context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-wake:
		return true, nil
	case <-t.C:
		return false, nil
	}
}

// PerSecond is a plain token bucket for a tool's --rate (r per second; 0 or
// less: nil, no limit). Its burst of 50 ms worth keeps the average at r
// without a timer per message.
func PerSecond(r float64) *rate.Limiter {
	if r <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r), max(1, int(r/20)))
}
