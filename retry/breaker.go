package retry

import (
	"fmt"
	"time"
)

// BreakerState is a circuit breaker's state. It is the one breaker state
// type: the pool, readiness, the gauges and the status page all read it.
type BreakerState int

// Breaker states, in the order of growing trouble (the breaker_state state
// set lists them in this order, by String).
const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

// String is the state as logs and the status page spell it.
func (s BreakerState) String() string {
	switch s {
	case BreakerHalfOpen:
		return "half_open"
	case BreakerOpen:
		return "open"
	default:
		return "closed"
	}
}

// MarshalText spells the state in JSON as String does.
func (s BreakerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (s *BreakerState) UnmarshalText(b []byte) error {
	for _, st := range []BreakerState{BreakerClosed, BreakerHalfOpen, BreakerOpen} {
		if string(b) == st.String() {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("breaker state %q is not closed, half_open or open", b)
}

// BreakerConfig tunes a Breaker. Zero values mean the documented defaults.
type BreakerConfig struct {
	// Window is how many recent calls the breaker looks at. Default 20.
	Window int
	// MinCalls is the fewest calls in the window before it may open.
	// Default 10.
	MinCalls int
	// Ratio opens the breaker when at least this share of the window
	// failed. Default 0.5.
	Ratio float64
	// Open is the first wait before a half-open probe; it doubles while
	// probes fail, up to MaxOpen. Defaults 250ms and 500ms: two calls a
	// second do not hammer a recovering API, and work resumes within about
	// half a second of it coming back (docs/performance.md).
	Open    time.Duration
	MaxOpen time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Window <= 0 {
		c.Window = 20
	}
	if c.MinCalls <= 0 {
		c.MinCalls = 10
	}
	if c.Ratio <= 0 {
		c.Ratio = 0.5
	}
	if c.Open <= 0 {
		c.Open = 250 * time.Millisecond
	}
	if c.MaxOpen <= 0 {
		c.MaxOpen = 500 * time.Millisecond
	}
	c.MaxOpen = max(c.MaxOpen, c.Open)
	return c
}

// Verdict is what one call's answer says about the API's health.
type Verdict int

// Verdicts.
const (
	// NoVerdict: the answer says nothing about the API's health (a
	// throttle, a cancelled call, a pausing answer).
	NoVerdict Verdict = iota
	// Up: the API answered (success or a client error).
	Up
	// Down: a 5xx, 408, timeout or transport error.
	Down
)

// VerdictOf maps a call's class to what it says about the API's health.
func VerdictOf(c Class) Verdict {
	switch {
	case c == Transient:
		return Down
	case c == Canceled || c == Throttled || c.Pauses():
		return NoVerdict
	default:
		return Up
	}
}

// Admission says whether a call may go out now.
type Admission struct {
	// Go: the call may go out.
	Go bool
	// Probe: the call is the half-open (or pause) probe; its answer must be
	// recorded with probe set, whatever happens to the call.
	Probe bool
	// Wait is how long to wait before asking again when !Go; 0 means until
	// the machine's state changes (a probe's answer).
	Wait time.Duration
}

// Breaker is one circuit breaker: a pure, clock-driven state machine. Every
// method takes the time instead of reading a clock, does no I/O and starts
// nothing; it is not safe for concurrent use (its owner holds a lock).
//
// Closed, it counts failures in a sliding window of calls and opens when
// their share reaches Ratio. Open, it admits nothing until its wait ends,
// then admits one probe (half-open); the probe's success closes it, its
// failure reopens it with the wait doubled. A job whose probe failed yields
// the next probe to another job for one period, so a few jobs that always
// fail cannot keep it open; probes never stop.
type Breaker struct {
	cfg      BreakerConfig
	state    BreakerState
	window   []bool // true = failure
	next     int
	filled   int
	fails    int
	wait     time.Duration
	until    time.Time // open until
	probing  bool
	probeJob string
	// failed holds the jobs whose probe failed while open.
	failed map[string]struct{}
	// probeFetch is when a fresh request was last fetched to probe with.
	probeFetch time.Time
	// follow: the fleet holds the breaker open and another replica probes
	// (FleetOpen); this one admits nothing and probes nothing.
	follow bool
	// forced: the fleet opened this breaker (FleetOpen), so this replica may
	// have no request of its own waiting to probe with.
	forced bool
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	cfg = cfg.withDefaults()
	return &Breaker{cfg: cfg, window: make([]bool, cfg.Window)}
}

// State is the breaker's state.
func (b *Breaker) State() BreakerState { return b.state }

// Failures reports the failures and calls in the window (for the log line
// that says why it opened).
func (b *Breaker) Failures() (failed, of int) { return b.fails, b.filled }

// Admit decides whether a call for job may go out at now. A Probe admission
// moves the breaker to half-open; its answer must come back through Record
// with probe set.
func (b *Breaker) Admit(now time.Time, job string) Admission {
	switch {
	case b.state == BreakerClosed:
		return Admission{Go: true}
	case b.state == BreakerHalfOpen:
		return Admission{} // its probe is out: wait for the answer
	case b.follow:
		return Admission{} // another replica probes for the fleet: wait for its answer
	case now.Before(b.until):
		return Admission{Wait: b.until.Sub(now)}
	case !b.failedProbe(job) || now.Sub(b.until) >= b.wait:
		b.state, b.probing, b.probeJob = BreakerHalfOpen, true, job
		return Admission{Go: true, Probe: true}
	default: // due, but this job failed a probe: others first
		return Admission{Wait: max(b.until.Add(b.wait).Sub(now), time.Millisecond)}
	}
}

// Fetch says whether the fetch loop may take new requests for this breaker:
// -1 without limit (closed), 1 a fresh request to probe with (open, due, and
// only jobs whose probe failed are waiting), 0 none.
func (b *Breaker) Fetch(now time.Time) int {
	switch {
	case b.state == BreakerClosed:
		return -1
	case b.state == BreakerOpen && !b.follow && !now.Before(b.until) && !b.probing &&
		(len(b.failed) > 0 || b.forced) && now.Sub(b.probeFetch) >= b.wait:
		b.probeFetch = now
		return 1
	default:
		return 0
	}
}

// Record feeds one call's verdict; probe says the call was admitted as the
// probe. It returns the state before, so the caller can log a change.
func (b *Breaker) Record(now time.Time, v Verdict, probe bool) (was BreakerState) {
	was = b.state
	if v == NoVerdict {
		if probe && b.state == BreakerHalfOpen {
			// No verdict from this probe: let another one go now.
			b.probing = false
			b.state, b.until = BreakerOpen, now
		}
		return was
	}
	switch b.state {
	case BreakerHalfOpen:
		if !probe {
			return was
		}
		b.probing = false
		if v == Down {
			if b.failed == nil {
				b.failed = map[string]struct{}{}
			}
			b.failed[b.probeJob] = struct{}{}
			b.wait = min(b.wait*2, b.cfg.MaxOpen)
			b.state, b.until = BreakerOpen, now.Add(b.wait)
			return was
		}
		b.state, b.forced = BreakerClosed, false
		b.reset()
	case BreakerClosed:
		b.add(v == Down)
		if b.filled >= b.cfg.MinCalls && float64(b.fails) >= b.cfg.Ratio*float64(b.filled) {
			b.wait = b.cfg.Open
			b.state, b.until = BreakerOpen, now.Add(b.wait)
		}
	}
	return was
}

// FleetOpen applies the fleet's word that the breaker is open (another
// replica's answers opened it). probe: this replica probes for the fleet (a
// closed breaker opens, its first probe a wait from now, and the fetch loop
// may take a fresh request to probe with); else it follows: it admits nothing
// and probes nothing until FleetClosed or Alone. It returns the state before.
func (b *Breaker) FleetOpen(now time.Time, probe bool) (was BreakerState) {
	was = b.state
	b.follow = !probe
	if b.state == BreakerClosed {
		b.reset()
		b.wait, b.forced = b.cfg.Open, true
		b.state, b.until = BreakerOpen, now.Add(b.wait)
	}
	return was
}

// FleetClosed applies the fleet's word that a probe succeeded (here or on
// another replica): the breaker closes. It returns the state before.
func (b *Breaker) FleetClosed() (was BreakerState) {
	was = b.state
	b.follow, b.forced = false, false
	if b.state != BreakerClosed {
		b.state, b.probing = BreakerClosed, false
		b.reset()
	}
	return was
}

// Alone makes the breaker decide on this replica's answers only (the fleet's
// state is not known): an open breaker probes here again.
func (b *Breaker) Alone() { b.follow = false }

func (b *Breaker) failedProbe(job string) bool {
	_, ok := b.failed[job]
	return ok
}

func (b *Breaker) add(failure bool) {
	if b.filled == len(b.window) {
		if b.window[b.next] {
			b.fails--
		}
	} else {
		b.filled++
	}
	b.window[b.next] = failure
	if failure {
		b.fails++
	}
	b.next = (b.next + 1) % len(b.window)
}

func (b *Breaker) reset() {
	clear(b.window)
	clear(b.failed)
	b.next, b.filled, b.fails = 0, 0, 0
}
