package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StoredMsg is a message read back from a stream.
type StoredMsg struct {
	Seq     uint64
	Subject string
	Header  map[string][]string
	Data    []byte
	Time    time.Time
}

// Scan reads every message of stream in order, from its first sequence to
// the last one present when Scan started, calling fn for each, without
// holding them in memory. It uses an ephemeral ordered consumer, so it
// neither acks nor disturbs the worker's consumer.
func (c *Conn) Scan(ctx context.Context, stream string, fn func(StoredMsg) error) error {
	s, err := c.JS.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	for {
		done, got, err := scanBatch(ctx, oc, last, fn)
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if done || got == 0 {
			// got == 0: everything up to last was deleted meanwhile.
			return nil
		}
	}
}

// scanBatch reads one batch; the pull is cancelled when it returns, so no
// fetch goroutine outlives it.
func scanBatch(ctx context.Context, oc jetstream.Consumer, last uint64, fn func(StoredMsg) error) (done bool, got int, err error) {
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	mb, err := oc.Fetch(256, jetstream.FetchContext(fctx))
	if err != nil {
		return false, 0, err
	}
	defer func() {
		cancel()
		for range mb.Messages() {
			// drain so the fetch goroutine exits
		}
	}()
	for m := range mb.Messages() {
		got++
		meta, err := m.Metadata()
		if err != nil {
			return false, got, err
		}
		if err := fn(StoredMsg{Seq: meta.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Time: meta.Timestamp}); err != nil {
			return false, got, err
		}
		if meta.Sequence.Stream >= last {
			return true, got, nil
		}
	}
	if err := mb.Error(); err != nil && !benign(err) {
		return false, got, err
	}
	return false, got, ctx.Err()
}

// StreamInfo returns a stream's current state.
func (c *Conn) StreamInfo(ctx context.Context, stream string) (*jetstream.StreamInfo, error) {
	s, err := c.JS.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return info, nil
}
