package retry

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Policy defaults. MaxElapsed is finite on purpose: backoff v4's own default silently stops
// after 15 minutes, and a delivery that retries in-process forever holds a worker slot that
// a nak with delay would free.
const (
	DefaultInitial       = 200 * time.Millisecond
	DefaultMax           = 5 * time.Second
	DefaultMultiplier    = 2.0
	DefaultJitter        = 0.5
	DefaultMaxElapsed    = 30 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
	DefaultNakInitial    = 5 * time.Second
	DefaultNakMax        = 2 * time.Minute
)

// Policy says how long to wait between tries: in-process, within one delivery (New, Next),
// and between deliveries, when JetStream holds the wait (NakDelay). A zero field takes its
// default. A Policy is a value, safe to share; the backoffs it makes are not.
type Policy struct {
	// Initial is the first in-process wait before jitter. Default 200ms.
	Initial time.Duration
	// Max caps the in-process wait before jitter; with jitter J a wait can reach Max·(1+J)
	// (backoff v4 caps the interval, then randomises it). Default 5s.
	Max time.Duration
	// Multiplier grows the wait after each try; at least 1. Default 2.
	Multiplier float64
	// Jitter is the randomisation factor in [0, 1): an in-process wait w becomes uniform in
	// [w·(1−J), w·(1+J)], a nak delay d uniform in [d·(1−J), d]. Default 0.5; -1 means none.
	Jitter float64
	// MaxElapsed is the in-process budget of one delivery: once the next wait would end
	// later than MaxElapsed after New, Next reports stop and the delivery should be naked
	// with NakDelay. Default 30s; there is deliberately no "never".
	MaxElapsed time.Duration
	// MaxRetryAfter caps a Retry-After hint, so a confused server cannot park a request for
	// hours. Default 60s.
	MaxRetryAfter time.Duration
	// NakInitial is the redelivery delay after the first delivery's budget is spent; it
	// doubles with each delivery. Default 5s.
	NakInitial time.Duration
	// NakMax caps the redelivery delay (jitter only shortens it). Default 2m.
	NakMax time.Duration
	// Clock is the backoffs' clock for MaxElapsed; nil means the system clock.
	Clock backoff.Clock
}

// DefaultPolicy returns the defaults spelled out, for flag defaults and help texts. It
// behaves exactly as the zero Policy.
func DefaultPolicy() Policy {
	return Policy{
		Initial:       DefaultInitial,
		Max:           DefaultMax,
		Multiplier:    DefaultMultiplier,
		Jitter:        DefaultJitter,
		MaxElapsed:    DefaultMaxElapsed,
		MaxRetryAfter: DefaultMaxRetryAfter,
		NakInitial:    DefaultNakInitial,
		NakMax:        DefaultNakMax,
	}
}

// Validate reports the first invalid field by name. Zero fields are valid (defaults).
func (p Policy) Validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"Initial", p.Initial}, {"Max", p.Max}, {"MaxElapsed", p.MaxElapsed},
		{"MaxRetryAfter", p.MaxRetryAfter}, {"NakInitial", p.NakInitial}, {"NakMax", p.NakMax},
	} {
		if f.d < 0 {
			return fmt.Errorf("retry: Policy.%s is negative (%v)", f.name, f.d)
		}
	}
	if p.Multiplier != 0 && !(p.Multiplier >= 1 && p.Multiplier <= 1000) {
		return fmt.Errorf("retry: Policy.Multiplier %v must be in [1, 1000]", p.Multiplier)
	}
	if p.Jitter != -1 && !(p.Jitter >= 0 && p.Jitter < 1) {
		return fmt.Errorf("retry: Policy.Jitter %v must be in [0, 1) or -1 for none", p.Jitter)
	}
	d := p.WithDefaults()
	if d.Initial > d.Max {
		return fmt.Errorf("retry: Policy.Initial %v exceeds Policy.Max %v", d.Initial, d.Max)
	}
	if d.NakInitial > d.NakMax {
		return fmt.Errorf("retry: Policy.NakInitial %v exceeds Policy.NakMax %v", d.NakInitial, d.NakMax)
	}
	return nil
}

// WithDefaults returns p with every zero field set to its default, so
// callers can read the effective values (e.g. MaxRetryAfter).
func (p Policy) WithDefaults() Policy {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&p.Initial, DefaultInitial)
	def(&p.Max, DefaultMax)
	def(&p.MaxElapsed, DefaultMaxElapsed)
	def(&p.MaxRetryAfter, DefaultMaxRetryAfter)
	def(&p.NakInitial, DefaultNakInitial)
	def(&p.NakMax, DefaultNakMax)
	if !(p.Multiplier >= 1) {
		p.Multiplier = DefaultMultiplier
	}
	switch {
	case p.Jitter < 0:
		p.Jitter = 0
	case p.Jitter == 0 || p.Jitter >= 1:
		p.Jitter = DefaultJitter
	}
	if p.Clock == nil {
		p.Clock = backoff.SystemClock
	}
	return p
}

// New returns a fresh, reset backoff for one delivery; its elapsed-time budget starts now.
// Every call returns a new value: backoff v4 values are not safe for concurrent use and
// carry per-delivery state, so never share one between messages. New assumes a Policy that
// passed Validate; out-of-range fields fall back to their defaults.
func (p Policy) New() *backoff.ExponentialBackOff {
	p = p.WithDefaults()
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithRandomizationFactor(p.Jitter),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
		backoff.WithClockProvider(p.Clock),
	)
}

// NewExcluding is New whose elapsed-time budget leaves out the time held reports (a total
// that only grows): the waits at an open breaker, a credential pause, a throttle or the
// rate limit are not tries, and a long one must not end the delivery's tries at its next
// failure. held is called from the goroutine that uses the backoff.
func (p Policy) NewExcluding(held func() time.Duration) *backoff.ExponentialBackOff {
	base := p.Clock
	if base == nil {
		base = backoff.SystemClock
	}
	p.Clock = heldClock{base: base, held: held}
	return p.New()
}

// heldClock runs behind its base by the time held: elapsed time measured on it excludes
// the holds.
type heldClock struct {
	base backoff.Clock
	held func() time.Duration
}

func (c heldClock) Now() time.Time { return c.base.Now().Add(-c.held()) }

// Next returns how long to wait before trying again after err, and false when this
// delivery's in-process budget is spent (nak it with NakDelay instead).
//
// A Retry-After hint on err (see RetryAfter) is preferred, capped at MaxRetryAfter, and
// does not advance b: a throttle is not a failure and must not grow the backoff. The hint
// still counts against the budget when b is a *backoff.ExponentialBackOff with a
// MaxElapsedTime. Without a hint the wait is b.NextBackOff().
func (p Policy) Next(b backoff.BackOff, err error) (time.Duration, bool) {
	if hint := RetryAfter(err); hint > 0 {
		hint = min(hint, p.WithDefaults().MaxRetryAfter)
		if eb, ok := b.(*backoff.ExponentialBackOff); ok && eb.MaxElapsedTime > 0 &&
			eb.GetElapsedTime()+hint > eb.MaxElapsedTime {
			return 0, false
		}
		return hint, true
	}
	d := b.NextBackOff()
	if d == backoff.Stop {
		return 0, false
	}
	return d, true
}

// NakDelay returns the redelivery delay for a message whose delivery number delivery
// (JetStream's NumDelivered, from 1; 0 counts as 1) spent its in-process budget, err being
// the last error (may be nil). The schedule is d = min(NakInitial·2^(delivery−1), NakMax),
// jittered down to [d·(1−Jitter), d] so naked messages do not come back in lockstep: with the
// defaults 5s, 10s, 20s, 40s, 80s, then 2m. A Retry-After hint on err (capped at
// MaxRetryAfter) is a lower bound: the API said when to come back.
func (p Policy) NakDelay(delivery uint64, err error) time.Duration {
	p = p.WithDefaults()
	d := p.NakInitial
	for n := uint64(1); n < delivery && d < p.NakMax; n++ {
		d *= 2
	}
	d = min(d, p.NakMax)
	if p.Jitter > 0 {
		d -= time.Duration(p.Jitter * rand.Float64() * float64(d)) //nolint:gosec // G404: jitter needs no cryptographic randomness
	}
	if hint := min(RetryAfter(err), p.MaxRetryAfter); hint > d {
		d = hint
	}
	return d
}

// ParseRetryAfter reads a Retry-After header value: delta-seconds ("120") or an HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT", also RFC 850 and ANSI C forms), relative to now.
// A date in the past gives 0, true (retry at once). Negative, fractional, signed, overflowing
// or otherwise malformed values give false.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		var secs int64
		for _, ch := range v {
			secs = secs*10 + int64(ch-'0')
			if secs > maxRetryAfterSeconds {
				return 0, false
			}
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := parseHTTPDate(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

// maxRetryAfterSeconds keeps a delta-seconds value inside time.Duration.
const maxRetryAfterSeconds = math.MaxInt64 / int64(time.Second)

// httpDateLayouts are the three forms RFC 9110 §5.6.7 tells recipients to accept.
var httpDateLayouts = []string{
	"Mon, 02 Jan 2006 15:04:05 GMT",  // IMF-fixdate
	"Monday, 02-Jan-06 15:04:05 GMT", // RFC 850
	"Mon Jan _2 15:04:05 2006",       // ANSI C asctime
}

var errNotHTTPDate = errors.New("not an HTTP-date")

// parseHTTPDate is net/http.ParseTime without importing net/http into the hot package.
func parseHTTPDate(v string) (time.Time, error) {
	for _, layout := range httpDateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errNotHTTPDate
}
