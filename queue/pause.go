package queue

import (
	"context"
	"fmt"
	"time"
)

// clock is the local clock the callers of PauseConsumer read until from;
// internal tests skew it.
var clock = time.Now

// PauseConsumer pauses delivery of the worker's consumer to every replica
// until the given time, read from this replica's clock (JetStream consumer
// pause, nats-server 2.11+). The pause ends by itself, so a replica that
// dies while paused does not stop the fleet for longer than its lease.
//
// The server ends a pause by its own clock: until is sent as the server's
// time (the consumer info's timestamp) plus the lease it leaves, so a
// replica whose clock runs an hour ahead does not pause the fleet for an
// hour past the lease, nor one an hour behind send a pause that already
// ended. Without the consumer's info it is sent as given.
func (c *Conn) PauseConsumer(ctx context.Context, until time.Time) error {
	lease := until.Sub(clock())
	if cons, err := c.JS.Consumer(ctx, c.cfg.Stream, c.cfg.Consumer); err == nil {
		if ts := cons.CachedInfo().TimeStamp; !ts.IsZero() {
			until = ts.Add(lease)
		}
	}
	if _, err := c.JS.PauseConsumer(ctx, c.cfg.Stream, c.cfg.Consumer, until); err != nil {
		return fmt.Errorf("pause consumer %s: %w", c.cfg.Consumer, err)
	}
	return nil
}

// resumeFor is how long ResumeConsumer keeps trying, and resumeTry how
// long one try may take.
var (
	resumeFor = 30 * time.Second
	resumeTry = 5 * time.Second
)

// ResumeConsumer ends a pause set by PauseConsumer. A try that fails for a
// reason that passes (a node down, a leader election) is made again, with
// backoff, for up to 30 s or until ctx ends: a resume given up at once left
// the whole fleet idle until the pause's lease ran out (minutes), every
// replica ready meanwhile (found by the soak, issue 15).
func (c *Conn) ResumeConsumer(ctx context.Context) error {
	giveUp := time.Now().Add(resumeFor)
	wait := 100 * time.Millisecond
	for {
		tctx, cancel := context.WithTimeout(ctx, resumeTry)
		_, err := c.JS.ResumeConsumer(tctx, c.cfg.Stream, c.cfg.Consumer)
		cancel()
		if err == nil {
			return nil
		}
		if Permanent(err) || ctx.Err() != nil || time.Now().Add(wait).After(giveUp) {
			return fmt.Errorf("resume consumer %s: %w", c.cfg.Consumer, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("resume consumer %s: %w", c.cfg.Consumer, err)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Pending returns how many requests wait in the consumer, not yet delivered
// to any replica: the server's count, from one consumer info request
// (worker.Backlog).
func (c *Conn) Pending(ctx context.Context) (uint64, error) {
	cons, err := c.JS.Consumer(ctx, c.cfg.Stream, c.cfg.Consumer)
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", c.cfg.Consumer, err)
	}
	return cons.CachedInfo().NumPending, nil
}
