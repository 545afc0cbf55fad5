package ui

import (
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// Live is this process's state that no stream holds. The zero value is a
// process with nothing to report.
type Live struct {
	// InFlight is the number of requests being worked on here.
	InFlight int `json:"in_flight"`
	// Concurrency is the most requests worked on at once.
	Concurrency int `json:"concurrency"`
	// RateLimit is the current API rate limit in requests/s (lowered by
	// throttles); 0 = none.
	RateLimit float64 `json:"rate_limit"`
	// RateLimitMax is the configured limit (--rate-limit); 0 = none.
	RateLimitMax float64 `json:"rate_limit_max"`
	// ThrottledUntil is the end of a Retry-After pause of the whole pool.
	ThrottledUntil time.Time `json:"throttled_until,omitzero"`
	// Paused reports consumption paused for credentials (401, a run of
	// 403s), with the reason.
	Paused      bool   `json:"paused"`
	PauseReason string `json:"pause_reason,omitempty"`
	// Breakers maps a region to its circuit breaker's state (JSON: closed,
	// half_open, open).
	Breakers map[string]retry.BreakerState `json:"breakers"`
	// Draining reports that shutdown has begun.
	Draining bool `json:"draining"`
}

// sample is one reading of the backlog and this process's totals.
type sample struct {
	at       time.Time
	backlog  float64
	finished float64
	calls    float64
}

// window keeps the samples of the last span, oldest first.
type window struct {
	span    time.Duration
	samples []sample
}

func (w *window) add(s sample) {
	w.samples = append(w.samples, s)
	cut := 0
	for cut < len(w.samples)-2 && s.at.Sub(w.samples[cut].at) > w.span {
		cut++
	}
	w.samples = w.samples[cut:]
}

// drainRate is how fast the backlog shrinks, in requests/s: minus the
// least-squares slope of the backlog over the window, so one noisy reading
// moves it little. ok is false with fewer than two samples a second apart.
func (w *window) drainRate() (rate float64, span time.Duration, ok bool) {
	n := len(w.samples)
	if n < 2 {
		return 0, 0, false
	}
	t0 := w.samples[0].at
	span = w.samples[n-1].at.Sub(t0)
	if span < time.Second {
		return 0, span, false
	}
	var sx, sy, sxx, sxy float64
	for _, s := range w.samples {
		x := s.at.Sub(t0).Seconds()
		sx += x
		sy += s.backlog
		sxx += x * x
		sxy += x * s.backlog
	}
	fn := float64(n)
	den := fn*sxx - sx*sx
	if den == 0 {
		return 0, span, false
	}
	return -(fn*sxy - sx*sy) / den, span, true
}

// recent is the per-second increase of f over the samples of the last d.
func (w *window) recent(d time.Duration, f func(sample) float64) float64 {
	n := len(w.samples)
	if n < 2 {
		return 0
	}
	last := w.samples[n-1]
	i := 0
	for i < n-2 && last.at.Sub(w.samples[i].at) > d {
		i++
	}
	first := w.samples[i]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0
	}
	return max(f(last)-f(first), 0) / dt
}
