package wire

import (
	"context"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// Limiters paces API calls with one retry.Limiter per allowed region: quotas
// are per regional endpoint, so a throttle in one region lowers only that
// region's rate. Each region's rate is shared with the fleet under its own
// KV key (queue.FleetConfig.Region). It implements worker.Limiter; a region
// it does not know ("" and the default region's name included) goes to the
// default region's limiter.
type Limiters struct {
	def      *retry.Limiter
	byRegion map[string]*retry.Limiter // the other allowed regions
}

func (l *Limiters) get(region string) *retry.Limiter {
	if r, ok := l.byRegion[region]; ok {
		return r
	}
	return l.def
}

// Wait blocks until a call to region may go out.
func (l *Limiters) Wait(ctx context.Context, region string) error { return l.get(region).Wait(ctx) }

// Throttled lowers region's rate.
func (l *Limiters) Throttled(region string, retryAfter time.Duration) {
	l.get(region).Throttled(retryAfter)
}

// Succeeded raises region's rate back.
func (l *Limiters) Succeeded(region string) { l.get(region).Succeeded() }

// Default is the default region's limiter (the rate the gauges and the
// status page show).
func (l *Limiters) Default() *retry.Limiter { return l.def }

// Region is region's limiter ("" = the default region's).
func (l *Limiters) Region(region string) *retry.Limiter { return l.get(region) }

// Holds shares each region's open breaker and pause with the fleet through
// the region's fleet KV key (queue.Fleet.Report). It implements worker.Share.
type Holds map[string]*queue.Fleet

// Report tells region's fleet about this replica's breaker or pause.
func (h Holds) Report(region string, e retry.HoldEvent) {
	if f, ok := h[region]; ok {
		f.Report(e)
	}
}
