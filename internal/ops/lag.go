package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ConsumerInfo reads the durable consumer's figures from the server.
// *queue.Consumer implements it.
type ConsumerInfo interface {
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
}

// LagPoller reads the consumer's lag (pending and ack-pending) periodically
// into Metrics, and remembers whether the consumer still exists, for the
// readiness check.
type LagPoller struct {
	// Consumer is read on every poll. Required.
	Consumer ConsumerInfo
	// Metrics receives the figures. nil = none (readiness only).
	Metrics *Metrics
	// Interval between polls. Default 15s (a typical scrape interval).
	Interval time.Duration
	// Timeout of one poll. Default 5s.
	Timeout time.Duration
	// Logger receives failures and recoveries, once per change. nil = none.
	Logger *zap.Logger

	mu      sync.Mutex
	unbound error // non-nil while the consumer (or its stream) is gone
	failing bool
}

// Run polls at once and then every Interval until ctx ends.
func (p *LagPoller) Run(ctx context.Context) {
	interval := p.Interval
	if interval <= 0 {
		interval = 15 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads the consumer's figures once.
func (p *LagPoller) Poll(ctx context.Context) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := p.Consumer.Info(pctx)
	if err != nil && ctx.Err() != nil {
		return // shutting down: not a failure worth a metric
	}
	var unbound error
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		unbound = fmt.Errorf("consumer is gone: %w", err)
	}
	p.mu.Lock()
	wasFailing := p.failing
	p.failing = err != nil
	p.unbound = unbound
	p.mu.Unlock()

	log := p.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if err != nil {
		if p.Metrics != nil {
			p.Metrics.lagErrors.Inc()
		}
		if !wasFailing {
			log.Warn("reading consumer info failed; lag metrics are stale", zap.Error(err))
		}
		return
	}
	if wasFailing {
		log.Info("reading consumer info works again")
	}
	if p.Metrics != nil {
		p.Metrics.setLag(info.NumPending, uint64(max(info.NumAckPending, 0)))
	}
}

// Bound returns nil unless the last poll found the consumer or its stream
// deleted. Connection trouble is not reported here (the NATS check says
// it), so one slow poll does not flip readiness.
func (p *LagPoller) Bound() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unbound
}
