package queue

import (
	"context"
	"fmt"
	"time"
)

// PauseConsumer pauses delivery of the worker's consumer to every replica
// until the given time (JetStream consumer pause, nats-server 2.11+). The
// pause ends by itself at until, so a replica that dies while paused does
// not stop the fleet for longer than that.
func (c *Conn) PauseConsumer(ctx context.Context, until time.Time) error {
	if _, err := c.JS.PauseConsumer(ctx, c.cfg.Stream, c.cfg.Consumer, until); err != nil {
		return fmt.Errorf("pause consumer %s: %w", c.cfg.Consumer, err)
	}
	return nil
}

// ResumeConsumer ends a pause set by PauseConsumer.
func (c *Conn) ResumeConsumer(ctx context.Context) error {
	if _, err := c.JS.ResumeConsumer(ctx, c.cfg.Stream, c.cfg.Consumer); err != nil {
		return fmt.Errorf("resume consumer %s: %w", c.cfg.Consumer, err)
	}
	return nil
}
